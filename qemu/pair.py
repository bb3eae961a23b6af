"""`make pair` (`python -m qemu.pair --model 450`): two mirrored virtual appliances.

Builds the model's image if there is none, flashes VMs a and b (fresh data disks unless
--keep-data), boots both in parallel, joins them as mirrors (credentials; see qemu/lab.py),
waits until both are healthy and mirrored, prints how to reach them, and stays up until
Ctrl-C; then both shut down cleanly.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time

from image.flash import FlashRefused

from .lab import MAIL_DOMAIN, Lab
from .machine import MachineError


def describe(lab: Lab) -> str:
    lines = [f"two mirrored model {lab.model} appliances are up "
             f"({lab['a'].accel.upper()}; healthy and mirrored "
             f"{lab.timings.get('mirrored', 0):.0f} s after this command started):", ""]
    for name, machine in lab.machines.items():
        p = machine.ports
        lines += [
            f"  {name}: lab address {lab.address(name)}, firmware {machine.firmware['version']}",
            f"     mail:   swaks --server 127.0.0.1:{p['smtp']} --to someone@{MAIL_DOMAIN}",
            f"     web UI: https://127.0.0.1:{p['web']}/  (self-signed certificate)",
            f"     ssh:    ssh -F {machine.ssh_config} -p {p['ssh']} root@127.0.0.1",
            f"     mirror: 127.0.0.1:{p['mirror']}; serial console: {machine.serial}",
        ]
    lines += ["", f"  web UI user: admin, password: {lab.admin_password}",
              "  mail to either is archived there and copied to the other "
              "(`archiver search` on both)", "", "Ctrl-C shuts both down."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m qemu.pair", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=int, default=450)
    parser.add_argument("--keep-data", action="store_true",
                        help="keep the VMs' data disks (archive, admin password) from before")
    parser.add_argument("--json", action="store_true", help="print the pair's ports as JSON too")
    args = parser.parse_args(argv)
    lab = Lab(["a", "b"], model=args.model, fresh=not args.keep_data)
    started = time.monotonic()
    try:
        lab.prepare()
    except FlashRefused as exc:
        print("pair: flash refused: " + "; ".join(exc.problems), file=sys.stderr)
        return 1
    print(f"pair: booting a and b (model {args.model}) ...", file=sys.stderr, flush=True)
    interrupted = False
    try:
        lab.start()
        print(f"pair: {lab['a'].accel.upper()}; serial consoles in {lab['a'].serial} and "
              f"{lab['b'].serial}", file=sys.stderr, flush=True)
        lab.wait_ready()
        lab.wait_mirrored()
        lab.timings["mirrored"] = time.monotonic() - started
        print(describe(lab), flush=True)
        if args.json:
            print(json.dumps({n: {"ports": m.ports, "address": lab.address(n)}
                              for n, m in lab.machines.items()}
                             | {"admin_password": lab.admin_password}), flush=True)
        # Ctrl-C (even when started from a shell that ignores SIGINT for background jobs)
        # and SIGTERM both shut the pair down cleanly.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        while all(m.is_up() for m in lab.machines.values()):
            time.sleep(1)
        print("pair: a VM stopped by itself", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        interrupted = True
        return 0
    except MachineError as exc:
        print(f"pair: {exc}", file=sys.stderr)
        return 1
    finally:
        print("pair: shutting down a and b ..." if interrupted else "pair: stopping",
              file=sys.stderr, flush=True)
        lab.shutdown()
        print("pair: both are off", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
