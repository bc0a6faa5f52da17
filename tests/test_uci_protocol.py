"""Unit tests of the UCI parsers and formatters (uci/protocol.py) and the options table (uci/options.py).

No subprocess here: the parsers are pure functions, python-chess reads the ``uci`` answer of an
in-process :class:`uci.loop.UciEngine`, and the fuzz tests drive ``UciEngine.handle`` with a
network-free evaluator.
"""

from __future__ import annotations

import asyncio
import io
import math
import re
from pathlib import Path

import chess
import chess.engine
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from uci_client import long_game

from engine.cpu import default_threads
from engine.priors import UNDERPROMOTION_LOGIT_PENALTY
from search.types import Limits, MoveStats, PvLine, Score, SearchInfo, SearchParams, default_ram_limit_mb, wdl_from_q
from uci.loop import UciEngine
from uci.options import DEFAULT_WEIGHTS, OPTIONS, Option, OptionError, OptionValues, markdown_table
from uci.protocol import (
    UciParseError,
    format_info,
    format_move_stats,
    parse_go,
    parse_position,
    parse_setoption,
)
from uci.writer import UciWriter

START = chess.STARTING_FEN
KIWIPETE = "r3k2r/p1ppqpb1/bn2pnp1/3PN3/1p2P3/2N2Q1p/PPPBBPPP/R3K2R w KQkq - 0 1"


def words(text: str) -> list[str]:
    return text.split()


# ----- parse_position ---------------------------------------------------------------------------------


def test_position_startpos():
    parsed = parse_position(["startpos"])
    assert parsed.board.fen() == START
    assert parsed.error is None


def test_position_startpos_moves():
    parsed = parse_position(words("startpos moves e2e4 e7e5 g1f3"))
    assert parsed.error is None
    assert [m.uci() for m in parsed.board.move_stack] == ["e2e4", "e7e5", "g1f3"]
    assert parsed.board.turn == chess.BLACK


def test_position_startpos_empty_move_list():
    parsed = parse_position(words("startpos moves"))
    assert parsed.board.fen() == START and parsed.error is None


def test_position_fen():
    parsed = parse_position(["fen", *KIWIPETE.split()])
    assert parsed.board.fen() == KIWIPETE and parsed.error is None


def test_position_fen_moves_castling_and_promotion():
    fen = "r3k3/6P1/8/8/8/8/8/R3K2R w KQq - 0 1"
    parsed = parse_position(["fen", *fen.split(), "moves", "e1g1", "e8c8", "g7g8q"])
    assert parsed.error is None
    board = parsed.board
    assert board.piece_at(chess.G1) == chess.Piece(chess.KING, chess.WHITE)
    assert board.piece_at(chess.C8) == chess.Piece(chess.KING, chess.BLACK)
    assert board.piece_at(chess.G8) == chess.Piece(chess.QUEEN, chess.WHITE)
    assert board.root().fen() == fen  # the move stack is kept (repetitions, tree reuse)


def test_position_fen_without_counters():
    parsed = parse_position(words("fen 4k3/8/8/8/8/8/8/4K2R w K -"))
    assert parsed.board.piece_at(chess.H1) == chess.Piece(chess.ROOK, chess.WHITE)


def test_position_illegal_move_stops_there():
    parsed = parse_position(words("startpos moves e2e4 e7e5 e1e3 g1f3"))
    assert [m.uci() for m in parsed.board.move_stack] == ["e2e4", "e7e5"]
    assert parsed.error is not None
    assert "illegal move e1e3" in parsed.error


def test_position_malformed_move_stops_there():
    parsed = parse_position(words("startpos moves e2e4 zz99 e7e5"))
    assert [m.uci() for m in parsed.board.move_stack] == ["e2e4"]
    assert parsed.error is not None and "zz99" in parsed.error


@pytest.mark.parametrize("args", [
    "fen garbage",
    "fen rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR x KQkq - 0 1",
    "fen 8/8/8/8/8/8/8/8 w - - 0 1",  # no kings
    "fen rnbqkbnr/pppppppp/8/8/8/8/PPPPPPPP/RNBQKBNR/8 w KQkq - 0 1",
    "fen",
    "fen moves e2e4",
    "",
    "moves e2e4",
    "startpos garbage",
    "startingpos",
])
def test_position_bad_input_raises(args):
    with pytest.raises(UciParseError):
        parse_position(words(args))


def test_position_300_moves_of_a_real_game():
    game = long_game(300)
    moves = [m.uci() for m in game.move_stack]
    parsed = parse_position(["startpos", "moves", *moves])
    assert parsed.error is None
    assert parsed.board.ply() == 300
    assert parsed.board.fen() == game.fen()
    assert parsed.board.move_stack == game.move_stack


# ----- parse_go ---------------------------------------------------------------------------------------


def test_go_all_fields():
    board = chess.Board()
    limits = parse_go(words("wtime 60000 btime 50000 winc 1000 binc 900 movestogo 20 movetime 3000 "
                            "nodes 800 depth 12 mate 3 infinite ponder searchmoves e2e4 d2d4"), board)
    assert limits == Limits(wtime=60000, btime=50000, winc=1000, binc=900, movestogo=20, movetime=3000, nodes=800,
                            depth=12, mate=3, infinite=True, ponder=True,
                            searchmoves=[chess.Move.from_uci("e2e4"), chess.Move.from_uci("d2d4")])


def test_go_empty_is_default_limits():
    assert parse_go([], chess.Board()) == Limits()


def test_go_negative_clock_is_zero():
    limits = parse_go(words("wtime -150 btime -1 winc -5 binc 0"), chess.Board())
    assert (limits.wtime, limits.btime, limits.winc, limits.binc) == (0, 0, 0, 0)


def test_go_searchmoves_stop_at_next_keyword_and_skip_illegal():
    limits = parse_go(words("searchmoves e2e4 e2e5 xyz g1f3 nodes 100"), chess.Board())
    assert limits.searchmoves == [chess.Move.from_uci("e2e4"), chess.Move.from_uci("g1f3")]
    assert limits.nodes == 100


def test_go_searchmoves_in_the_middle():
    limits = parse_go(words("wtime 1000 searchmoves d2d4 btime 2000"), chess.Board())
    assert limits.searchmoves == [chess.Move.from_uci("d2d4")]
    assert (limits.wtime, limits.btime) == (1000, 2000)


@pytest.mark.parametrize("args", [
    "nodes xyz", "nodes", "depth 1.5", "wtime", "movetime ten", "foo", "nodes 10 bar", "infinitely",
    "wtime 1000 btime",
])
def test_go_bad_input_raises(args):
    with pytest.raises(UciParseError):
        parse_go(words(args), chess.Board())


def test_go_is_timed():
    board = chess.Board()
    assert parse_go(words("wtime 1000 btime 1000"), board).is_timed()
    assert parse_go(words("movetime 100"), board).is_timed()
    assert not parse_go(words("nodes 100"), board).is_timed()
    assert not parse_go(words("infinite"), board).is_timed()


# ----- parse_setoption --------------------------------------------------------------------------------


def test_setoption_simple():
    assert parse_setoption(words("name Threads value 2")) == ("Threads", "2")


def test_setoption_names_and_values_with_spaces():
    assert parse_setoption(words("name Skill Level value 3")) == ("Skill Level", "3")
    assert parse_setoption(words("name WeightsFile value /tmp/my nets/a.pt")) == ("WeightsFile", "/tmp/my nets/a.pt")


def test_setoption_missing_value_is_empty():
    assert parse_setoption(words("name Clear Hash")) == ("Clear Hash", "")
    assert parse_setoption(words("name WeightsFile value")) == ("WeightsFile", "")


@pytest.mark.parametrize("args", ["", "Threads value 2", "name", "name value 3", "value 3"])
def test_setoption_bad_input_raises(args):
    with pytest.raises(UciParseError):
        parse_setoption(words(args))


# ----- format_info ------------------------------------------------------------------------------------


def _info(lines: list[PvLine], stats: list[MoveStats] | None = None) -> SearchInfo:
    return SearchInfo(depth=5, seldepth=9, time_ms=1234, nodes=4321, nps=3500, hashfull=12, lines=lines,
                      stats=stats or [])


def _line(multipv: int, score: Score, q: float, pv: str) -> PvLine:
    return PvLine(multipv, score, q, wdl_from_q(q), [chess.Move.from_uci(m) for m in pv.split()], 10)


def test_format_info_cp_without_wdl():
    (text,) = format_info(_info([_line(1, Score(cp=35), 0.2, "e2e4 e7e5")]), show_wdl=False)
    assert text == ("info depth 5 seldepth 9 time 1234 nodes 4321 nps 3500 hashfull 12 multipv 1 score cp 35 "
                    "pv e2e4 e7e5")
    assert "wdl" not in text


def test_format_info_mate_and_wdl():
    (text,) = format_info(_info([_line(1, Score(mate=-2), -1.0, "e1e2 d8h4")]), show_wdl=True)
    assert " score mate -2 " in text
    assert re.search(r" wdl (\d+) (\d+) (\d+) pv ", text)
    w, d, lo = map(int, re.search(r" wdl (\d+) (\d+) (\d+) ", text).groups())
    assert (w, d, lo) == wdl_from_q(-1.0) and w + d + lo == 1000


def test_format_info_multipv_lines():
    lines = [_line(1, Score(cp=50), 0.3, "e2e4 e7e5"), _line(2, Score(cp=20), 0.1, "d2d4"),
             _line(3, Score(cp=-10), -0.05, "g1f3 g8f6 c2c4")]
    out = format_info(_info(lines), show_wdl=False)
    assert len(out) == 3
    for rank, text in enumerate(out, 1):
        assert f" multipv {rank} " in text
    assert [t.split(" pv ")[1].split()[0] for t in out] == ["e2e4", "d2d4", "g1f3"]


def test_format_info_no_lines_gives_the_head():
    assert format_info(_info([]), show_wdl=True) == [
        "info depth 5 seldepth 9 time 1234 nodes 4321 nps 3500 hashfull 12"]


def test_format_info_read_by_python_chess():
    parse = getattr(chess.engine, "_parse_uci_info", None)
    if parse is None:
        pytest.skip("python-chess has no _parse_uci_info")
    board = chess.Board()
    lines = [_line(1, Score(cp=50), 0.3, "e2e4 e7e5"), _line(2, Score(mate=3), 1.0, "d2d4")]
    first, second = (parse(t[len("info "):], board) for t in format_info(_info(lines), show_wdl=True))
    assert first["depth"] == 5 and first["seldepth"] == 9 and first["nodes"] == 4321 and first["multipv"] == 1
    assert first["score"].relative == chess.engine.Cp(50)
    assert first["pv"] == [chess.Move.from_uci("e2e4"), chess.Move.from_uci("e7e5")]
    assert tuple(first["wdl"].relative) == wdl_from_q(0.3)
    assert second["score"].relative == chess.engine.Mate(3) and second["multipv"] == 2


def test_format_move_stats_least_visited_first():
    stats = [MoveStats(chess.Move.from_uci("e2e4"), 30, 0.25, 0.1),
             MoveStats(chess.Move.from_uci("a2a3"), 0, 0.01, None),
             MoveStats(chess.Move.from_uci("d1h5"), 5, 0.02, 1.0, mate_plies=1)]
    out = format_move_stats(stats)
    assert [t.split()[2] for t in out] == ["a2a3", "d1h5", "e2e4"]
    assert all(t.startswith("info string ") for t in out)
    assert "mates in 1 plies" in out[1]


# ----- options ----------------------------------------------------------------------------------------


def _option(name: str) -> Option:
    return next(o for o in OPTIONS if o.name == name)


def test_spin_range():
    threads = _option("Threads")
    assert threads.parse("4") == 4
    assert threads.parse(" 1 ") == 1
    assert threads.parse("256") == 256
    for bad in ("0", "257", "-1", "abc", "1.5", ""):
        with pytest.raises(OptionError):
            threads.parse(bad)


def test_float_range_and_nan():
    cpuct = _option("CPuct")
    assert cpuct.parse("2.5") == 2.5
    assert cpuct.parse("0") == 0.0
    for bad in ("nan", "NaN", "inf", "-inf", "-0.1", "100.5", "abc", ""):
        with pytest.raises(OptionError):
            cpuct.parse(bad)


def test_check_true_false():
    wdl = _option("UCI_ShowWDL")
    assert wdl.parse("true") is True
    assert wdl.parse("TRUE") is True
    assert wdl.parse("false") is False
    assert wdl.parse(" False ") is False
    for bad in ("yes", "1", "", "on"):
        with pytest.raises(OptionError):
            wdl.parse(bad)


def test_combo_case_insensitive():
    backend = _option("Backend")
    assert backend.parse("STATIC-INT8") == "static-int8"
    assert backend.parse("Fp32") == "fp32"
    with pytest.raises(OptionError):
        backend.parse("int4")


def test_string_keeps_inner_spaces():
    assert _option("WeightsFile").parse("/tmp/my nets/a.pt") == "/tmp/my nets/a.pt"


def test_option_values_case_insensitive_names():
    values = OptionValues()
    assert values["threads"] == default_threads()  # the CPU's default, whatever the case of the name
    option, value = values.set("multipv", "3")
    assert option.name == "MultiPV" and value == 3
    assert values["MultiPV"] == 3 and values["MULTIPV"] == 3
    with pytest.raises(OptionError):
        values.set("NoSuchOption", "1")
    with pytest.raises(OptionError):
        values.set("MultiPV", "0")
    assert values["MultiPV"] == 3  # a refused value leaves the old one
    assert list(values) == [o.name for o in OPTIONS]


def test_option_names_unique():
    names = [o.name.lower() for o in OPTIONS]
    assert len(names) == len(set(names))


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_option_default_is_valid(option):
    assert option.parse(option.default_text()) == option.default
    if option.kind in ("spin", "float"):
        assert option.minimum <= option.default <= option.maximum
    if option.kind == "combo":
        assert option.default in option.choices


UCI_OPTION_LINE = re.compile(
    r"^option name (?P<name>\S+(?: \S+)*?) type (?P<type>check|spin|combo|string|button)"
    r"(?: default (?P<default>.*?))?(?: min (?P<min>-?\d+) max (?P<max>-?\d+))?(?P<vars>(?: var \S+)*)$")


@pytest.mark.parametrize("option", OPTIONS, ids=lambda o: o.name)
def test_option_uci_line_format(option):
    line = option.uci_line()
    m = UCI_OPTION_LINE.match(line)
    assert m, line
    assert m["name"] == option.name
    kind = "string" if option.kind == "float" else option.kind
    assert m["type"] == kind
    assert m["default"] == option.default_text()
    if kind == "spin":
        assert int(m["min"]) == option.minimum and int(m["max"]) == option.maximum
        assert int(m["min"]) <= int(m["default"]) <= int(m["max"])
    else:
        assert m["min"] is None
    if kind == "combo":
        assert m["vars"].split()[1::2] == list(option.choices)
    # UCI separates fields by keywords: none may appear as a word of a name or value
    keywords = {"name", "type", "default", "min", "max", "var"}
    assert not keywords & set(option.name.split())
    assert not keywords & set(option.default_text().split())


def _python_chess_handshake() -> chess.engine.UciProtocol:
    """python-chess's UCI client reads the ``uci`` answer of an in-process UciEngine (no subprocess)."""

    async def main() -> chess.engine.UciProtocol:
        loop = asyncio.get_running_loop()
        protocol = chess.engine.UciProtocol()

        class Stdout(io.TextIOBase):
            def write(self, text: str) -> int:
                loop.call_soon(protocol.pipe_data_received, 1, text.encode())
                return len(text)

        uci = UciEngine(UciWriter(Stdout()))

        class Stdin:
            def write(self, data: bytes) -> None:
                for line in data.decode().splitlines():
                    uci.handle(line)

        class Transport:
            def get_pipe_transport(self, fd: int) -> Stdin:
                return Stdin()

            def get_pid(self) -> int:
                return 0

            def get_returncode(self) -> None:
                return None

        protocol.connection_made(Transport())
        await asyncio.wait_for(protocol.initialize(), 30)
        return protocol

    return asyncio.run(main())


def test_python_chess_reads_every_option():
    protocol = _python_chess_handshake()
    assert protocol.id["name"].startswith("azengine")
    assert set(protocol.options) == {o.name for o in OPTIONS}
    for o in OPTIONS:
        read = protocol.options[o.name]
        assert read.type == ("string" if o.kind == "float" else o.kind), o.name
        if o.kind == "spin":
            assert (read.min, read.max, read.default) == (o.minimum, o.maximum, o.default)
            assert isinstance(read.min, int) and isinstance(read.max, int)
        elif o.kind == "check":
            assert read.default is o.default
        elif o.kind == "combo":
            assert read.var == list(o.choices) and read.default == o.default
        else:
            assert read.default == o.default_text(), o.name


def test_python_chess_reads_weightsfile_default():
    protocol = _python_chess_handshake()
    assert protocol.options["WeightsFile"].default == DEFAULT_WEIGHTS


# ----- fuzz -------------------------------------------------------------------------------------------

GO_WORDS = ["wtime", "btime", "winc", "binc", "movestogo", "movetime", "nodes", "depth", "mate", "infinite",
            "ponder", "searchmoves"]
POSITION_WORDS = ["startpos", "fen", "moves", "e2e4", "e7e5", "g1f3", "e1g1", "0000", "a7a8q", *KIWIPETE.split()]
NUMBERS = st.integers(-10**6, 10**6).map(str)
TOKEN = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(lambda t: t.split() == [t])


def token_lists(vocabulary: list[str]) -> st.SearchStrategy[list[str]]:
    return st.lists(st.one_of(st.sampled_from(vocabulary), NUMBERS, TOKEN), max_size=14)


@settings(max_examples=300, deadline=None)
@given(st.one_of(token_lists(GO_WORDS), st.text().map(str.split)))
def test_fuzz_parse_go_only_raises_parse_error(args):
    try:
        limits = parse_go(args, chess.Board())
    except UciParseError:
        return
    for field in ("wtime", "btime", "winc", "binc", "movestogo", "movetime", "nodes", "depth", "mate"):
        value = getattr(limits, field)
        assert value is None or (isinstance(value, int) and value >= 0)
    assert all(m in chess.Board().legal_moves for m in limits.searchmoves)


@settings(max_examples=300, deadline=None)
@given(st.one_of(token_lists(POSITION_WORDS), st.text().map(str.split)))
def test_fuzz_parse_position_only_raises_parse_error(args):
    try:
        parsed = parse_position(args)
    except UciParseError:
        return
    assert parsed.board.is_valid()
    assert parsed.error is None or isinstance(parsed.error, str)


@settings(max_examples=200, deadline=None)
@given(st.one_of(token_lists(["name", "value", "Threads", "MultiPV", "Backend", "CPuct", "UCI_ShowWDL"]),
                 st.text().map(str.split)))
def test_fuzz_setoption_only_raises_parse_or_option_error(args):
    try:
        name, value = parse_setoption(args)
        OptionValues().set(name, value)
    except (UciParseError, OptionError):
        pass


class NetworkFreeEngine(UciEngine):
    """A UciEngine that never loads a network: its searcher runs on UniformEvaluator."""

    def ensure_model(self) -> None:
        pass


COMMANDS = ["uci", "isready", "ucinewgame", "position", "go", "stop", "ponderhit", "setoption", "debug", "d",
            "register", "quit"]
HANDLE_WORDS = COMMANDS + GO_WORDS + POSITION_WORDS + ["name", "value", "MultiPV", "Threads", "MinibatchSize",
                                                       "NNCacheSize", "RamLimitMb", "Temperature", "VerboseMoveStats",
                                                       "UCI_ShowWDL", "on", "off", "true", "5", "1"]
SAFE_GO = st.sampled_from(["go nodes 5", "go depth 2", "go movetime 20", "go infinite", "go ponder",
                           "go wtime 100 btime 100", "go mate 1 nodes 10", "go nodes 3 searchmoves e2e4 d2d4"])
LINES = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(HANDLE_WORDS), max_size=10).map(" ".join),
    st.builds(lambda c, rest: f"{c} {rest}", st.sampled_from(COMMANDS[:-1]), st.text(max_size=40)),
    st.builds(lambda c, rest: " ".join([c, *rest]), st.sampled_from(COMMANDS[:-1]),
              st.lists(st.one_of(st.sampled_from(HANDLE_WORDS), NUMBERS), max_size=8)),
    SAFE_GO,
    token_lists(POSITION_WORDS).map(lambda rest: " ".join(["position", *rest])),
    token_lists(GO_WORDS).map(lambda rest: " ".join(["go", *rest])),
    token_lists(["name", "value", *(o.name for o in OPTIONS if o.name not in ("WeightsFile", "Backend"))])
    .map(lambda rest: " ".join(["setoption", *rest])),
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(LINES, min_size=1, max_size=8))
def test_fuzz_handle_never_fails(lines):
    """Arbitrary lines: handle() never raises, only reports parse errors, and a search can always be stopped."""
    out = io.StringIO()
    uci = NetworkFreeEngine(UciWriter(out))
    try:
        for line in lines:
            if uci.handle(line) is False:
                assert line.split()[0] == "quit"
                break
        uci.handle("stop")
        assert not uci.searching()
        uci.handle("position startpos moves e2e4")
        uci.handle("go nodes 3")
        uci.handle("stop")
    finally:
        uci.handle("stop")
        if uci.searcher is not None:
            uci.searcher.close()
    text = out.getvalue()
    assert "internal error" not in text, text
    for sent in text.splitlines():
        assert sent.split()[0] in ("id", "option", "uciok", "readyok", "info", "bestmove"), sent
    assert text.splitlines()[-1].startswith("bestmove ")


@pytest.fixture
def session():
    """An in-process engine without a network and the text it wrote; any search is stopped afterwards."""
    out = io.StringIO()
    uci = NetworkFreeEngine(UciWriter(out))
    yield uci, out
    uci.handle("stop")
    if uci.searcher is not None:
        uci.searcher.close()


def test_handle_isready_and_stop_during_infinite_search(session):
    uci, out = session
    uci.handle("go infinite")
    assert uci.searching()
    uci.handle("isready")
    assert "readyok" in out.getvalue().splitlines()
    assert "bestmove" not in out.getvalue()
    uci.handle("stop")
    assert not uci.searching()
    assert out.getvalue().splitlines()[-1].startswith("bestmove ")


def test_handle_ucinewgame_during_infinite_search_does_not_hang(session):
    uci, out = session
    uci.handle("go infinite")
    uci.handle("ucinewgame")  # used to join the endless search thread forever
    assert not uci.searching()
    uci.handle("isready")
    assert out.getvalue().splitlines()[-1] == "readyok"


def test_handle_go_mate_reports_without_stop(session):
    uci, out = session
    uci.handle("position fen r1bqkb1r/pppp1ppp/2n2n2/4p2Q/2B1P3/8/PPPP1PPP/RNB1K1NR w KQkq - 4 4")
    uci.handle("go mate 1")
    uci._search_thread.join(timeout=10)  # the search ends by itself: the mate is proven at the root
    assert not uci.searching()
    assert out.getvalue().splitlines()[-1] == "bestmove h5f7"


def test_handle_position_moves_without_start_is_a_parse_error():
    out = io.StringIO()
    uci = NetworkFreeEngine(UciWriter(out))
    uci.handle("position moves e2e4")
    assert out.getvalue().startswith("info string error: ")
    assert "internal error" not in out.getvalue()


def test_handle_unknown_and_binary_lines():
    out = io.StringIO()
    uci = NetworkFreeEngine(UciWriter(out))
    for line in ["", "   ", "\ufffd\ufffd\x00\x01junk", "cmd_uci", "__init__", "x" * 100_000, "1234",
                 "setoption name Threads value abc", "setoption name NoSuchOption value 1"]:
        assert uci.handle(line) is True
    lines = out.getvalue().splitlines()
    assert lines and all(t.startswith("info string ") and len(t) < 1000 for t in lines)
    assert uci.options["Threads"] == default_threads()  # "abc" was refused, the default stands


def test_malformed_go_is_reported_and_still_answered_with_one_bestmove():
    out = io.StringIO()
    uci = NetworkFreeEngine(UciWriter(out))
    for line in ["go nodes xyz", "go banana", "go " + "nodes " * 100]:
        assert uci.handle(line) is True
    uci.handle("stop")
    uci.handle("isready")
    lines = out.getvalue().splitlines()
    assert sum(t.startswith("info string error: ") for t in lines) == 3, lines
    assert sum(t.startswith("bestmove ") for t in lines) == 3, lines


def test_cp_from_q_is_monotonic_and_bounded():
    values = [Score.from_q(q / 50).cp for q in range(-50, 51)]
    assert values == sorted(values)
    assert all(abs(v) <= 12_000 for v in values)
    assert Score.from_q(0.0).cp == 0 and not math.isnan(Score.from_q(1.0).cp)


def test_readme_lists_every_option_as_the_engine_declares_it() -> None:
    """The README's options table is the one ``python -m uci.options`` prints."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert markdown_table() in readme


def test_search_options_agree_with_the_readme_and_a_fresh_search() -> None:
    """Each search option's ``option`` line, README row and a fresh search's setting carry one default."""
    out = io.StringIO()
    uci = NetworkFreeEngine(UciWriter(out))
    uci.handle("uci")
    announced = {m["name"]: m["default"] for m in map(UCI_OPTION_LINE.match, out.getvalue().splitlines()) if m}
    uci.handle("go nodes 1")
    uci.handle("stop")
    searcher = uci.searcher
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    params = SearchParams()
    declared = [o for o in OPTIONS if o.param]
    assert {o.param for o in declared} == set(vars(params)) - {"max_collisions"}  # all but one are options
    for option in declared:
        assert option.parse(announced[option.name]) == getattr(params, option.param) == option.default, option.name
        assert getattr(searcher.params, option.param) == option.default, option.name
        assert f"| `{option.name}` | " in readme and f"| `{option.readme_default()}` |" in readme
    tree = searcher.tree
    assert (tree.cpuct, tree.cpuct_base, tree.cpuct_factor) == (params.cpuct, params.cpuct_base, params.cpuct_factor)
    assert (tree.fpu_reduction, tree.fpu_reduction_root) == (params.fpu_value, params.fpu_value_at_root)
    assert tree.policy_temperature == params.policy_temperature
    assert tree.underpromotion_penalty == UNDERPROMOTION_LOGIT_PENALTY
    assert params.ram_limit_mb == default_ram_limit_mb() > 0
    assert searcher.runner.cache.size == params.nn_cache_size
    searcher.close()
