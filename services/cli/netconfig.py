"""`archiver netconfig apply`: apply /etc/archiver/network.yaml (archiver-netconfig.service)."""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from pyroute2.netlink.exceptions import NetlinkError

from services.appliance.netconfig import (DEFAULT_FILE, DEFAULT_RESOLV_CONF, NetconfigError, apply,
                                          load_network_config)


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("netconfig", help="the appliance's network configuration")
    actions = group.add_subparsers(dest="netconfig_command", required=True, metavar="ACTION")
    p = actions.add_parser("apply", help="apply the network file (static address or DHCP)")
    p.add_argument("--file", type=Path, default=DEFAULT_FILE)
    p.add_argument("--interface", help="overrides the file's interface")
    p.add_argument("--resolv-conf", type=Path, default=DEFAULT_RESOLV_CONF,
                   help="where DNS servers are written")
    p.add_argument("--wait", type=float, default=0, metavar="SECONDS",
                   help="wait this long for the interface to appear")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_apply)


def cmd_apply(args) -> int:
    config = load_network_config(args.file)  # a bad file stops here, nothing changed
    if args.interface:
        config = dataclasses.replace(config, interface=args.interface)
    try:
        applied = apply(config, args.resolv_conf, args.wait)
    except NetlinkError as exc:  # e.g. an address the kernel refuses
        raise NetconfigError(f"{args.file}: the kernel refused the configuration of "
                             f"{config.interface}: {exc.args[-1]}") from None
    if args.json:
        print(json.dumps(dataclasses.asdict(applied)))
    elif applied.mode == "dhcp":
        print(f"{applied.interface}: DHCP, handed to {applied.dhcp_client}")
    else:
        print(f"{applied.interface}: {applied.address}, gateway {applied.gateway or 'none'}"
              + (f", DNS in {applied.resolv_conf}" if applied.resolv_conf else ""))
    return 0
