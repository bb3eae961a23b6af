"""`archiver firmware ...`: models, this system's firmware, peer compatibility, signing."""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from . import keys, manifest
from .compat import SystemIdentity, may_mirror
from .models import load_models
from .system import manifest_state, this_identity
from .version import FirmwareVersion, current_version


def register(commands: argparse._SubParsersAction) -> None:
    group = commands.add_parser("firmware", help="model profiles, firmware version, manifests")
    sub = group.add_subparsers(dest="firmware_command", required=True, metavar="ACTION")

    p = sub.add_parser("models", help="list the model profiles")
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.set_defaults(handler=cmd_models)

    p = sub.add_parser("show", help="this system's model, firmware version and manifest state")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)

    p = sub.add_parser("check-peer", help="may this system mirror with a peer? (exit 0 yes, 1 no)")
    p.add_argument("--model", type=int, required=True, help="the peer's model")
    p.add_argument("--version", required=True, help="the peer's firmware version")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_check_peer)

    p = sub.add_parser("keygen", help="make a development signing key pair (never into git)")
    p.add_argument("--dir", type=Path, default=keys.DEFAULT_DIR, help="default: build/keys")
    p.set_defaults(handler=cmd_keygen)

    p = sub.add_parser("sign", help="write a signed manifest of payload files")
    p.add_argument("--key", type=Path, default=keys.DEFAULT_DIR / keys.PRIVATE_NAME)
    p.add_argument("--model", type=int, required=True)
    p.add_argument("--version", default=None, help="default: the tree's firmware/VERSION")
    p.add_argument("--root", type=Path, required=True, help="folder the payload paths are in")
    p.add_argument("--output", "-o", type=Path, required=True, help="manifest.json to write; "
                   "the signature goes beside it as .sig")
    p.add_argument("paths", nargs="+", help="payload files or folders, relative to --root")
    p.set_defaults(handler=cmd_sign)

    p = sub.add_parser("verify", help="verify a manifest's signature and payload")
    p.add_argument("manifest", type=Path)
    p.add_argument("--pubkey", type=Path, default=keys.DEFAULT_DIR / keys.PUBLIC_NAME)
    p.add_argument("--signature", type=Path, help="default: MANIFEST with .sig")
    p.add_argument("--root", type=Path, help="check the payload files under this folder")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_verify)


def cmd_models(args) -> int:
    catalog = load_models()
    for profile in catalog:
        if args.json:
            print(json.dumps(asdict(profile)))
        else:
            features = [name for name, on in asdict(profile.features).items() if on] or ["-"]
            print(f"{profile.model:>5}  {profile.storage_gb:>6} GB  attachment text "
                  f"{profile.attachment_text_kb:>5} KB  smtp x{profile.smtp.concurrency:<4} "
                  f"{','.join(features)}")
    return 0


def cmd_show(args) -> int:
    identity = this_identity()
    profile = load_models().get(identity.model)
    state = manifest_state()
    info = {"model": identity.model, "name": profile.name, "version": str(identity.version),
            "manifest": state.state, "manifest_detail": state.detail}
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{profile.name} (model {identity.model}), firmware {identity.version}")
        print(f"manifest: {state.state}: {state.detail}")
    return 0 if state.state != "invalid" else 1


def cmd_check_peer(args) -> int:
    peer = SystemIdentity(model=args.model, version=FirmwareVersion.parse(args.version))
    verdict = may_mirror(this_identity(), peer, load_models())
    print(json.dumps(asdict(verdict)) if args.json else verdict.reason)
    return 0 if verdict.allowed else 1


def cmd_keygen(args) -> int:
    private_path, public_path = keys.generate(args.dir)
    print(f"private key: {private_path}\npublic key:  {public_path}")
    return 0


def cmd_sign(args) -> int:
    load_models().get(args.model)  # refuse a model that does not exist
    version = FirmwareVersion.parse(args.version) if args.version else current_version()
    found = manifest.create(args.root, args.paths, args.model, version)
    data = found.to_bytes()
    args.output.write_bytes(data)
    signature_path = args.output.with_name(args.output.name + ".sig")
    signature_path.write_bytes(manifest.sign(data, keys.load_private(args.key)))
    print(f"signed {len(found.files)} files for model {found.model}, firmware {found.version}: "
          f"{args.output}, {signature_path}")
    return 0


def cmd_verify(args) -> int:
    signature_path = args.signature or args.manifest.with_name(args.manifest.name + ".sig")
    try:
        found = manifest.verify(args.manifest.read_bytes(), signature_path.read_bytes(),
                                keys.load_public(args.pubkey), args.root)
    except manifest.ManifestError as exc:
        _report_verify(args, False, exc.problems)
        return 1
    except OSError as exc:
        _report_verify(args, False, [f"cannot read {exc.filename}: {exc.strerror}"])
        return 1
    _report_verify(args, True, [], found)
    return 0


def _report_verify(args, ok: bool, problems: list[str], found=None) -> None:
    if args.json:
        print(json.dumps({"valid": ok, "problems": problems,
                          "manifest": asdict(found) if found else None}))
    elif ok:
        checked = f", {len(found.files)} payload files checked" if args.root else ""
        print(f"valid: model {found.model}, firmware {found.version}{checked}")
    else:
        print("INVALID: " + "\n  ".join(problems))
