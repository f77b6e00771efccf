"""The CLI's progress bars (synib_client/progress.py): the text of a bar, a line per change in a
pipe or a log, bars redrawn in place on a terminal, the upload counter."""

from __future__ import annotations

import io

from synib_client.progress import BarBoard, human_bytes, render_bar, upload_progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_is_hand_checked() -> None:
    assert render_bar("t", 0, 4, {}, width=4) == "t:   0%|    | 0/4"
    assert render_bar("t", 3, 4, {"epoch": 3}, width=4) == "t:  75%|### | 3/4 [epoch=3]"
    assert render_bar("t", 5, 4, {}, width=4) == "t: 100%|####| 5/4"  # more epochs than planned
    assert (
        render_bar("t", 0, 0, {"status": "failed"}, width=4) == "t:   0%|    | 0/0 [status=failed]"
    )


def test_off_a_terminal_each_change_is_one_new_line() -> None:
    out = io.StringIO()
    board = BarBoard(out)
    bar = board.bar("a", "vanilla|seed=0", 2)
    bar.done, bar.postfix = 1, {"epoch": 1}
    board.show("a")
    board.write("job j: running (0/1 trials)")
    assert board.bar("a", "ignored", 9) is bar
    bar.done = 2
    board.show("a")
    assert out.getvalue().splitlines() == [
        "vanilla|seed=0:  50%|##########          | 1/2 [epoch=1]",
        "job j: running (0/1 trials)",
        "vanilla|seed=0: 100%|####################| 2/2 [epoch=1]",
    ]
    assert "\x1b" not in out.getvalue()


def test_on_a_terminal_bars_stay_below_the_messages() -> None:
    out = Terminal()
    board = BarBoard(out)
    board.bar("a", "a", 2)
    board.show("a")
    board.bar("b", "b", 2)
    board.show("b")  # up one line (a's), then both bars again
    board.write("note")  # up two lines, clear below, the note, both bars again
    assert out.getvalue() == (
        "\x1b[2Ka:   0%|                    | 0/2\n"
        "\x1b[1F"
        "\x1b[2Ka:   0%|                    | 0/2\n"
        "\x1b[2Kb:   0%|                    | 0/2\n"
        "\x1b[2F\x1b[Jnote\n"
        "\x1b[2Ka:   0%|                    | 0/2\n"
        "\x1b[2Kb:   0%|                    | 0/2\n"
    )


def test_upload_counter_draws_on_a_terminal_only() -> None:
    out = io.StringIO()
    upload_progress(out)(5, 10)
    assert out.getvalue() == ""
    term = Terminal()
    progress = upload_progress(term, "upload x.npz")
    progress(1_250_000, 2_500_000)
    progress(2_500_000, 2_500_000)
    assert term.getvalue() == (
        "\r\x1b[2Kupload x.npz  50% 1.2 MB\r\x1b[2Kupload x.npz 100% 2.5 MB\r\x1b[2K"
    )
    assert [human_bytes(n) for n in (999, 1000, 10**9, 10**13)] == [
        "999 B",
        "1.0 kB",
        "1.0 GB",
        "10000.0 GB",
    ]
