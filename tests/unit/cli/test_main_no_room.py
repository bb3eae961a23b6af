"""services.cli.main's want-of-room line agrees with services.archive.space."""
from services.archive import space
from services.cli import main


def test_main_takes_the_same_errnos_and_exit_code_for_a_full_disk_as_space():
    assert set(main.NO_ROOM_ERRNOS) == space._OUT_OF_SPACE
    assert main.NO_ROOM_EXIT_CODE == space.OutOfSpace.exit_code
