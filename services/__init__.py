"""The appliance runtime: store, index, intake, mirror, policy and web services, and the CLI."""
