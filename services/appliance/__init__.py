"""The appliance as a machine: systemd integration (notify, watchdog, journal), each
service's recorded state and the list of services (service_state.py), health as status and
/metrics show it, first boot, network configuration, the systemd unit files, and accounts
(users.py, admin_password.py). Health reads every stage below it."""
