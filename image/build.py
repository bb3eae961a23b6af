"""Build the appliance image of one model: `python -m image.build --model 450` (`make image`).

    base tree (mmdebstrap, cached)  ->  + this tree's wheel, units, model profile, defaults,
    the archiver user, root's SSH key  ->  signed firmware manifest baked into /usr/share/archiver
    ->  ext4 (mkfs.ext4 -d, no loop device or mount)  ->  disk.qcow2, vmlinuz, initrd.img
    ->  image.json signed over all of them

The build runs as root (the base tree's files belong to root and other system users, and
chroot runs systemctl, systemd-sysusers and python3 of the image). See image/artifacts.py for
what the output folder holds.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from firmware import keys, manifest
from firmware.errors import ArchiverError
from firmware.models import load_models
from firmware.version import FirmwareVersion, current_version

from . import artifacts, base, native, wheel
from .log import BuildError, BuildLog

TREE = Path(__file__).resolve().parent.parent
BUILD = TREE / "build"
OVERLAY = Path(__file__).resolve().parent / "rootfs"
FIRMWARE_DIR = "usr/share/archiver"
UNIT_DIR = "usr/lib/systemd/system"
IMAGE_UNITS = ("archiver-verify.service", "archiver-data.service")
# Apply the settings the QEMU harness passes a virtual appliance as credentials (SMBIOS);
# without those credentials they do nothing (image/rootfs/usr/lib/archiver/vmsettings).
VM_UNITS = ("archiver-vmsettings.service", "archiver-vmjoin.service")
DROP_IN = "50-archiver-image.conf"
# Shared folders whose entries of these names the manifest must list (firmware.manifest):
# a unit or drop-in in /etc/systemd/system overrides the image's (archiver-verify.service
# included), and a sitecustomize/usercustomize module or .pth file in the stdlib folder
# runs in every Python process. The rest of these folders is not the firmware's.
GUARDED = {"etc/systemd/system": ["archiver-*", "*.service.d"],
           "usr/lib/python3.11": ["sitecustomize*", "usercustomize*", "*.pth"],
           "usr/lib/python3.11/__pycache__": ["sitecustomize.*", "usercustomize.*"]}
# Folders that hold only what the manifest lists, beside the site folders: Python's own
# configuration (/usr/lib/python3.11/sitecustomize.py is a link to the one here).
PYTHON_CONFIG = "etc/python3.11"
ROOT_LABEL = "archiver-root"
DEFAULT_ROOT_MIB = 2048
CHROOT_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# Timers apt installs that would reach for the network; an appliance updates by firmware.
DISABLED_UNITS = ("apt-daily.timer", "apt-daily-upgrade.timer")
# Root has no password, so a login prompt on the serial console serves nobody; without it
# systemd keeps showing on the console how the boot goes (archiver services included).
MASKED_UNITS = ("serial-getty@.service",
                # e2scrub checks ext4 on LVM snapshots; the appliance has no LVM, yet at boot
                # e2scrub_reap took minutes of a small VM's only CPU from the services.
                "e2scrub_reap.service", "e2scrub_all.timer",
                # binfmt_misc runs foreign executables through an interpreter; the appliance
                # runs none, and under TCG the service and its automount took 13 and 12 s
                # of a booting pair's guest (systemd-analyze blame).
                "systemd-binfmt.service", "proc-sys-fs-binfmt_misc.automount",
                "proc-sys-fs-binfmt_misc.mount")
TOOLS = ("mmdebstrap", "tar", "mkfs.ext4", "qemu-img", "ssh-keygen", "chroot", "g++")


def default_signing_key() -> Path:
    return keys.DEFAULT_DIR / keys.PRIVATE_NAME


def default_ssh_key() -> Path:
    return BUILD / "ssh" / "id_ed25519"


def ensure_signing_key(path: Path, log: BuildLog) -> Path:
    """The signing key; a development key pair is made in build/keys if there is none."""
    if not path.exists():
        if path != default_signing_key():
            raise BuildError(f"signing key {path} does not exist")
        keys.generate(path.parent)
        log.step(f"keys: made a development signing key pair in {path.parent}")
    return path


def ensure_ssh_key(path: Path, log: BuildLog) -> Path:
    """The build host's SSH key that root on the appliance accepts; made if missing."""
    public = path.with_name(path.name + ".pub")
    if not public.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        log.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "archiver build host",
                 "-f", str(path)])
        log.step(f"ssh: made the build host's key {path}")
    return public


def chroot(root: Path, log: BuildLog, *command: str,
           check: bool = True) -> subprocess.CompletedProcess:
    """Run a command of the image inside it, with a clean environment, and with /proc when
    the build may make a mount namespace (psutil and others read it on import)."""
    inside = ["chroot", str(root), "/usr/bin/env", "-i", f"PATH={CHROOT_PATH}", "LANG=C.UTF-8",
              "PYTHONDONTWRITEBYTECODE=1", *command]
    if _can_mount_proc():
        inside = ["unshare", "--mount", "--pid", "--fork", f"--mount-proc={root / 'proc'}",
                  *inside]
    return log.run(inside, check=check)


_PROC_PROBE: list[bool] = []


def _can_mount_proc() -> bool:
    if not _PROC_PROBE:
        probe = subprocess.run(["unshare", "--mount", "--pid", "--fork", "--mount-proc", "true"],
                               capture_output=True)
        _PROC_PROBE.append(probe.returncode == 0)
    return _PROC_PROBE[0]


def copy_overlay(root: Path) -> list[str]:
    """Copy image/rootfs over the tree (root-owned, modes as in git); returns what it wrote."""
    written = []
    for source in sorted(OVERLAY.rglob("*")):
        relative = source.relative_to(OVERLAY)
        target = root / relative
        if source.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.is_symlink() or target.exists():
            target.unlink()
        shutil.copyfile(source, target)
        target.chmod(0o755 if os.access(source, os.X_OK) else 0o644)
        os.chown(target, 0, 0)
        written.append(str(relative))
    return written


def has_install_section(unit: Path) -> bool:
    return any(line.strip() == "[Install]" for line in unit.read_text().splitlines())


def install_units(root: Path) -> tuple[list[str], list[str]]:
    """The runtime's units (from the installed wheel) into /usr/lib/systemd/system, and a
    drop-in per service making it require archiver-verify and archiver-data. Returns the
    written paths and the units to enable."""
    source_dir = root / wheel.SITE_PACKAGES / "services" / "units"
    units = sorted([*source_dir.glob("*.service"), *source_dir.glob("*.timer")])
    if not units:
        raise BuildError(f"the wheel has no systemd units ({source_dir} is empty)")
    unit_dir = root / UNIT_DIR
    written, enable = [], []
    for unit in units:
        target = unit_dir / unit.name
        shutil.copyfile(unit, target)
        target.chmod(0o644)
        written.append(f"{UNIT_DIR}/{unit.name}")
        if has_install_section(unit):
            enable.append(unit.name)
        if unit.suffix == ".service":
            drop_in = unit_dir / f"{unit.name}.d" / DROP_IN
            drop_in.parent.mkdir(exist_ok=True)
            drop_in.write_text(
                "# Written by the image build (image/build.py): this service starts only on a\n"
                "# verified firmware, and after the data disk is mounted.\n"
                "[Unit]\n"
                f"Requires={' '.join(IMAGE_UNITS)}\n"
                f"After={' '.join(IMAGE_UNITS)}\n")
            drop_in.chmod(0o644)
            written.append(str(drop_in.relative_to(root)))
    enable += [*IMAGE_UNITS, *VM_UNITS]
    return written, enable


def payload_folders(root: Path, log: BuildLog, unit_files: list[str]) -> list[str]:
    """The folders whose every file the manifest lists, so that the boot check fails on a
    file added there: where the image's Python finds modules and .pth files at start-up
    (its site-packages folders, Debian's libraries included; made empty when missing), the
    firmware's scripts, the drop-in folders of the archiver units, and Python's own
    configuration folder (PYTHON_CONFIG), the folder of the compiled programs
    (image/native.py)."""
    shown = chroot(root, log, "python3", "-c",
                   "import site; print('\\n'.join(site.getsitepackages()))")
    folders = []
    for line in [l.strip() for l in shown.stdout.splitlines() if l.startswith("/usr/")]:
        folder = root / line.lstrip("/")
        if not folder.is_dir():
            folder.mkdir(mode=0o755, parents=True)
        folders.append(line.lstrip("/"))
    drop_ins = sorted({str(Path(p).parent) for p in unit_files if p.endswith(f"/{DROP_IN}")})
    python_config = [PYTHON_CONFIG] if (root / PYTHON_CONFIG).is_dir() else []
    return [*folders, "usr/lib/archiver", native.IMAGE_DIR, *drop_ins, *python_config]


def install_model(root: Path, model: int) -> list[str]:
    catalog = load_models()
    catalog.get(model)  # refuses a model models.yaml does not have
    firmware_dir = root / FIRMWARE_DIR
    firmware_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(TREE / "models.yaml", firmware_dir / "models.yaml")
    (firmware_dir / "model").write_text(f"{model}\n")
    for name in ("models.yaml", "model"):
        (firmware_dir / name).chmod(0o644)
    return [f"{FIRMWARE_DIR}/models.yaml", f"{FIRMWARE_DIR}/model"]


def install_config(root: Path) -> None:
    """/etc/archiver/archiver.yaml: a copy of the firmware's default, checked by the
    runtime's own configuration loader."""
    from services.common.config import load_config
    default = root / FIRMWARE_DIR / "defaults" / "archiver.yaml"
    previous = os.environ.get("ARCHIVER_MODELS")
    os.environ["ARCHIVER_MODELS"] = str(root / FIRMWARE_DIR / "models.yaml")
    try:
        load_config(default)
    finally:
        if previous is None:
            os.environ.pop("ARCHIVER_MODELS", None)
        else:
            os.environ["ARCHIVER_MODELS"] = previous
    config_dir = root / "etc" / "archiver"
    config_dir.mkdir(parents=True, exist_ok=True)
    config_dir.chmod(0o755)
    shutil.copyfile(default, config_dir / "archiver.yaml")
    (config_dir / "archiver.yaml").chmod(0o644)


def install_root_ssh_key(root: Path, public_key: Path) -> None:
    ssh_dir = root / "root" / ".ssh"
    ssh_dir.mkdir(parents=True, exist_ok=True)
    ssh_dir.chmod(0o700)
    authorized = ssh_dir / "authorized_keys"
    authorized.write_text(public_key.read_text())
    authorized.chmod(0o600)


def remove_machine_identity(root: Path) -> None:
    """Nothing that must differ between appliances stays in the image: SSH host keys (made on
    first start of sshd), the machine id (made on first boot), the build host's resolv.conf."""
    for key in (root / "etc" / "ssh").glob("ssh_host_*"):
        key.unlink()
    (root / "etc" / "machine-id").write_text("")
    dbus_id = root / "var" / "lib" / "dbus" / "machine-id"
    if dbus_id.exists() and not dbus_id.is_symlink():
        dbus_id.unlink()


def secrets_in_tree(root: Path, secrets: dict[str, bytes]) -> list[str]:
    """Files under root that contain any of the secrets (the signing key, the host's SSH key)."""
    needles = {name: value for name, value in secrets.items() if value}
    found = []
    for directory, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(directory, d))]
        for filename in filenames:
            path = os.path.join(directory, filename)
            if os.path.islink(path) or not os.path.isfile(path):
                continue
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                continue
            for name, needle in needles.items():
                if needle in data:
                    found.append(f"{os.path.relpath(path, root)} contains {name}")
    return found


def pem_body(path: Path) -> bytes:
    """A line of a PEM/OpenSSH private key's base64 body that holds key material: what would
    show up if the key were copied (an OpenSSH key's first line is the same for every key)."""
    lines = [l for l in path.read_bytes().splitlines() if l and not l.startswith(b"-----")]
    return lines[1] if len(lines) > 1 else lines[0]


def self_check(root: Path, log: BuildLog, cmdline: str) -> dict:
    """`archiver firmware show --json` inside the tree, given the image's command line
    (in /proc of the chroot is the build host's)."""
    given = root / "tmp" / "archiver-build-cmdline"
    shown = root / "tmp" / "archiver-build-shown.json"
    given.write_text(cmdline + "\n")
    try:
        # stdout to a file of its own: the log merges stderr, where a warning could land
        # after the JSON line
        ran = chroot(root, log, "sh", "-c", f"ARCHIVER_KERNEL_CMDLINE=/{given.relative_to(root)} "
                     f"exec archiver firmware show --json > /{shown.relative_to(root)}",
                     check=False)
        try:
            return json.loads(shown.read_text())
        except (OSError, ValueError):
            raise BuildError(f"`archiver firmware show --json` in the image printed no state "
                             f"(exit code {ran.returncode}):\n{ran.stdout[-2000:]}") from None
    finally:
        given.unlink()
        shown.unlink(missing_ok=True)


def boot_files(root: Path, output: Path, public_key) -> str:
    kernels = sorted((root / "boot").glob("vmlinuz-*"))
    if len(kernels) != 1:
        raise BuildError(f"the base tree has {len(kernels)} kernels in /boot, not 1")
    release = kernels[0].name.removeprefix("vmlinuz-")
    initrd = root / "boot" / f"initrd.img-{release}"
    if not initrd.exists():
        raise BuildError(f"the base tree has no {initrd.name}")
    shutil.copyfile(kernels[0], output / artifacts.KERNEL)
    shutil.copyfile(initrd, output / artifacts.INITRD)
    # The command line carries the key the boot check trusts (not one on the disk it checks).
    (output / artifacts.CMDLINE).write_text(artifacts.boot_cmdline(public_key) + "\n")
    return release


def make_disk(root: Path, output: Path, size_mib: int, log: BuildLog) -> None:
    """ext4 of the tree (mkfs.ext4 -d: no loop device, no mount), as a qcow2."""
    raw = output / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(size_mib << 20)
    log.run(["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-E", "root_owner=0:0",
             "-d", str(root), str(raw)])
    log.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw),
             str(output / artifacts.DISK)])
    raw.unlink()


def tree_size(root: Path) -> int:
    total = 0
    for directory, _, filenames in os.walk(root):
        for filename in filenames:
            path = os.path.join(directory, filename)
            if not os.path.islink(path):
                total += os.lstat(path).st_blocks * 512
    return total


def build_image(model: int, *, images_dir: Path = BUILD / "images",
                cache_dir: Path = BUILD / "cache", signing_key: Path | None = None,
                ssh_key: Path | None = None, sources: list[Path] | None = None,
                root_mib: int = DEFAULT_ROOT_MIB, rebuild_base: bool = False,
                quiet: bool = False, version: FirmwareVersion | None = None) -> Path:
    """Build the image of `model` into images_dir/<model>-<version>/; returns that folder.
    `version` (default firmware/VERSION) builds these sources as another firmware release:
    the image's firmware/VERSION, manifests and folder name all say it."""
    if os.geteuid() != 0:
        raise BuildError("the image build runs as root (chroot, files of system users)")
    missing = [tool for tool in TOOLS if not shutil.which(tool)]
    if missing:
        raise BuildError(f"the build host lacks {', '.join(missing)} (make setup installs them)")
    load_models().get(model)
    version = version or current_version()
    name = artifacts.image_dir_name(model, version)
    images_dir.mkdir(parents=True, exist_ok=True)
    final = images_dir / name
    partial = images_dir / f".{name}.partial"
    work = images_dir / f".{name}.work"
    for leftover in (partial, work):
        if leftover.exists():
            shutil.rmtree(leftover)
    partial.mkdir()
    log = BuildLog(partial / "build.log", quiet=quiet)
    timings = {}
    try:
        log.step(f"image: model {model}, firmware {version} -> {final}")
        signing_key = ensure_signing_key(signing_key or default_signing_key(), log)
        private_key = keys.load_private(signing_key)
        ssh_public = ensure_ssh_key(ssh_key or default_ssh_key(), log)

        wheel_file = wheel.build_wheel(
            work / "wheel", log,
            version=None if version == current_version() else str(version))
        timings["wheel"] = log.elapsed()
        tarball, base_cached = base.cached_base(cache_dir, log, sources, rebuild=rebuild_base)
        timings["base"] = log.elapsed()
        root = work / "root"
        root.mkdir()
        log.run(["tar", "--extract", "--file", str(tarball), "--directory", str(root),
                 "--preserve-permissions", "--same-owner", "--numeric-owner",
                 "--xattrs", "--xattrs-include=*"])
        log.step("base: extracted")
        timings["extract"] = log.elapsed()

        payload = [p for p in copy_overlay(root) if p.startswith("usr/")]
        payload += wheel.install_wheel(wheel_file, root)
        payload += native.install(root, log)
        firmware_dir = root / FIRMWARE_DIR
        shutil.copyfile(wheel_file, firmware_dir / wheel_file.name)
        (firmware_dir / wheel_file.name).chmod(0o644)
        payload.append(f"{FIRMWARE_DIR}/{wheel_file.name}")
        unit_files, enable = install_units(root)
        payload += unit_files
        payload += install_model(root, model)
        install_config(root)
        install_root_ssh_key(root, ssh_public)
        remove_machine_identity(root)
        log.step(f"tree: wheel, {len(unit_files)} unit files, model {model}, defaults, "
                 "root's SSH key")

        chroot(root, log, "systemd-sysusers")
        chroot(root, log, "systemctl", "enable", *enable, "systemd-networkd.service")
        chroot(root, log, "systemctl", "disable", *DISABLED_UNITS)
        chroot(root, log, "systemctl", "mask", *MASKED_UNITS)
        chroot(root, log, "systemctl", "set-default", "multi-user.target")
        packages_dir = f"/{wheel.SITE_PACKAGES}"
        packages = [f"{packages_dir}/{p}" for p in wheel.PACKAGES
                    if (root / wheel.SITE_PACKAGES / p).is_dir()]
        # Every module of the site folders gets its byte code now, so that no Python process
        # on the appliance writes any there later: the boot check would find it unlisted.
        # (A module that does not compile, e.g. a package's test data, is left as it is.)
        chroot(root, log, "python3", "-m", "compileall", "-q", packages_dir, check=False)
        chroot(root, log, "python3", "-m", "compileall", "-q", "-f", "--invalidation-mode",
               "checked-hash", *packages)
        payload += [p.lstrip("/") for p in packages]
        # sitecustomize's byte code too (GUARDED lists it): else the first Python process
        # run as root would write it, and the next boot check would find it unlisted.
        chroot(root, log, "python3", "-m", "compileall", "-q",
               "/usr/lib/python3.11/sitecustomize.py", check=False)
        folders = payload_folders(root, log, unit_files)
        payload += folders
        log.step(f"tree: archiver user, enabled {', '.join(enable)}; byte-compiled; payload "
                 f"folders {', '.join(folders)}")
        timings["tree"] = log.elapsed()

        found = manifest.create(root, sorted(set(payload)), model, version, guarded=GUARDED)
        manifest_bytes = found.to_bytes()
        signature = manifest.sign(manifest_bytes, private_key)
        public_pem = keys.public_pem(private_key.public_key())
        for directory in (firmware_dir, partial):
            (directory / artifacts.FIRMWARE_MANIFEST).write_bytes(manifest_bytes)
            (directory / artifacts.FIRMWARE_SIGNATURE).write_bytes(signature)
            (directory / artifacts.FIRMWARE_PUBLIC_KEY).write_bytes(public_pem)
        for name in (artifacts.FIRMWARE_MANIFEST, artifacts.FIRMWARE_SIGNATURE,
                     artifacts.FIRMWARE_PUBLIC_KEY):
            (firmware_dir / name).chmod(0o644)
        log.step(f"manifest: {len(found.files)} payload files, {len(found.links)} links and "
                 f"{len(found.folders)} folders signed with key "
                 f"{keys.key_id(private_key.public_key())}")

        # The image's own command checks what was baked in, with the image's own Python and
        # Debian libraries, and the key the image's kernel command line will carry; every
        # runtime module must import there.
        state = self_check(root, log, artifacts.boot_cmdline(private_key.public_key()))
        if state.get("manifest") != "verified" or state.get("model") != model:
            raise BuildError(f"the image does not verify itself: {state}")
        chroot(root, log, "python3", "-c",
               "import importlib, pkgutil, firmware, services\n"
               "for package in (firmware, services):\n"
               "    for module in pkgutil.iter_modules(package.__path__):\n"
               "        importlib.import_module(f'{package.__name__}.{module.name}')\n")
        leaks = secrets_in_tree(root, {"the firmware signing key": pem_body(signing_key),
                                       "the build host's SSH key": pem_body(
                                           ssh_public.with_suffix(""))})
        if leaks:
            raise BuildError("a private key would be in the image: " + "; ".join(leaks))
        log.step(f"check: `archiver firmware show` in the image: {state['manifest_detail']}; "
                 "every runtime module imports; no private key inside")
        timings["check"] = log.elapsed()

        release = boot_files(root, partial, private_key.public_key())
        content = tree_size(root)
        if content > (root_mib << 20) * 0.85:
            raise BuildError(f"the tree ({content >> 20} MiB) does not fit a {root_mib} MiB "
                             "root file system with room to spare; pass --root-mib")
        make_disk(root, partial, root_mib, log)
        timings["disk"] = log.elapsed()
        signed = artifacts.sign_image(partial, model, version, private_key)
        disk_bytes = (partial / artifacts.DISK).stat().st_size
        log.step(f"disk: {artifacts.DISK} {disk_bytes >> 20} MiB ({content >> 20} MiB of files "
                 f"in a {root_mib} MiB ext4), kernel {release}; image.json signed")
        timings["total"] = log.elapsed()
        info = {"model": model, "version": str(version), "build_time": signed.build_time,
                "kernel": release, "base": tarball.name,
                "base_cached": base_cached,
                "tree_bytes": content, "root_bytes": root_mib << 20, "disk_bytes": disk_bytes,
                "wheel": wheel_file.name, "payload_files": len(found.files),
                "seconds": {k: round(v, 1) for k, v in timings.items()}}
        (partial / "build.json").write_text(json.dumps(info, indent=1) + "\n")
        log.close()
        if final.exists():
            shutil.rmtree(final)
        os.replace(partial, final)
        return final
    except BaseException as exc:
        log.write(f"FAILED: {exc!r}")
        log.close()
        if not quiet:
            print(f"image build: the log is {partial / 'build.log'}", file=sys.stderr)
        raise
    finally:
        if work.exists():
            shutil.rmtree(work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m image.build", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=int, default=450)
    parser.add_argument("--images-dir", type=Path, default=BUILD / "images")
    parser.add_argument("--cache-dir", type=Path, default=BUILD / "cache")
    parser.add_argument("--key", type=Path, default=None,
                        help="signing key (default build/keys, made if missing)")
    parser.add_argument("--ssh-key", type=Path, default=None,
                        help="private key whose .pub root accepts (default build/ssh/id_ed25519)")
    parser.add_argument("--sources", type=Path, action="append",
                        help="apt sources file(s) (default: the host's own)")
    parser.add_argument("--root-mib", type=int, default=DEFAULT_ROOT_MIB,
                        help=f"size of the root file system (default {DEFAULT_ROOT_MIB})")
    parser.add_argument("--version", type=FirmwareVersion.parse, default=None,
                        help="build as this firmware version instead of firmware/VERSION's "
                             "(a stand-in for another release; the system tests use it)")
    parser.add_argument("--rebuild-base", action="store_true", help="ignore the cached base tree")
    parser.add_argument("--json", action="store_true", help="print build.json when done")
    args = parser.parse_args(argv)
    try:
        output = build_image(args.model, images_dir=args.images_dir, cache_dir=args.cache_dir,
                             signing_key=args.key, ssh_key=args.ssh_key, sources=args.sources,
                             root_mib=args.root_mib, rebuild_base=args.rebuild_base,
                             version=args.version)
    except (BuildError, base.BaseError, ArchiverError) as exc:
        print(f"image build failed: {exc}", file=sys.stderr)
        return 1
    info = json.loads((output / "build.json").read_text())
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{output}: model {info['model']}, firmware {info['version']}, disk "
              f"{info['disk_bytes'] >> 20} MiB, built in {info['seconds']['total']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
