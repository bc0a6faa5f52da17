# Part of the _mcts extension (included by _mcts.pyx): the rules in C (movegen.c), positions, moves, policy indices.

cdef extern from "movegen.h":
    ctypedef struct az_pos:
        uint64_t pieces[6]
        uint64_t color[2]
        uint64_t castling
        int32_t ep
        int32_t turn
        int32_t halfmove
        int32_t chess960
    int AZ_BLACK
    int AZ_WHITE
    int AZ_KING
    void az_init()
    int az_legal_moves(const az_pos* pos, uint16_t* out) nogil
    void az_make_move(az_pos* pos, uint16_t move) nogil
    int az_in_check(const az_pos* pos) nogil
    int az_insufficient_material(const az_pos* pos) nogil
    uint64_t az_key(const az_pos* pos) nogil
    void az_bitboards(const az_pos* pos, uint64_t* out16) nogil

cdef extern from *:
    int __builtin_popcountll(unsigned long long) nogil

az_init()


cdef az_pos _position_of(object board) except *:
    """The C position of a python-chess board (standard chess or Chess960, as ``board.chess960`` says)."""
    cdef az_pos p
    p.pieces[0] = board.pawns
    p.pieces[1] = board.knights
    p.pieces[2] = board.bishops
    p.pieces[3] = board.rooks
    p.pieces[4] = board.queens
    p.pieces[5] = board.kings
    p.color[0] = board.occupied_co[chess.WHITE]
    p.color[1] = board.occupied_co[chess.BLACK]
    p.castling = board.clean_castling_rights()
    p.ep = -1 if board.ep_square is None else board.ep_square
    p.turn = 0 if board.turn == chess.WHITE else 1
    p.halfmove = board.halfmove_clock
    p.chess960 = 1 if board.chess960 else 0
    return p


cdef object _board_of(const az_pos* p):
    """A python-chess board of a C position without castling rights (for the tablebase prober)."""
    board = chess.Board(None)
    board.pawns, board.knights, board.bishops = p.pieces[0], p.pieces[1], p.pieces[2]
    board.rooks, board.queens, board.kings = p.pieces[3], p.pieces[4], p.pieces[5]
    board.occupied_co[chess.WHITE] = p.color[0]
    board.occupied_co[chess.BLACK] = p.color[1]
    board.occupied = p.color[0] | p.color[1]
    board.turn = p.turn == 0
    board.ep_square = None if p.ep < 0 else p.ep
    board.halfmove_clock = p.halfmove
    return board


cpdef int64_t position_key(object board):
    """Key of a position for transpositions and repetitions: pieces, side to move, castling, legal e.p.

    The fields of python-chess's ``_transposition_key`` mixed into 64 bits in C (``az_key``), the same
    function the search applies to the positions inside the tree.
    """
    cdef az_pos p = _position_of(board)
    return <int64_t> az_key(&p)


cdef class Position:
    """A C position for tests and tools: the rules the search plays by, callable from Python."""

    cdef az_pos pos

    def __init__(self, board):
        self.pos = _position_of(board)

    def push(self, int code):
        """Play the packed move ``code`` (assumed legal)."""
        az_make_move(&self.pos, <uint16_t> code)

    def legal_moves(self):
        """Packed codes of the legal moves, in generation order."""
        cdef uint16_t moves[MAX_MOVES]
        cdef int n = az_legal_moves(&self.pos, moves)
        return [moves[i] for i in range(n)]

    def key(self):
        """The transposition key (as ``position_key`` of the same python-chess board)."""
        return <int64_t> az_key(&self.pos)

    def in_check(self):
        """Whether the side to move is in check."""
        return bool(az_in_check(&self.pos))

    def insufficient_material(self):
        """Whether neither side can mate (python-chess's ``is_insufficient_material``)."""
        return bool(az_insufficient_material(&self.pos))

    @property
    def halfmove_clock(self):
        """Plies since the last capture or pawn move."""
        return self.pos.halfmove

    def bitboards(self):
        """The 16 input bitboards (``engine.encoding.bitboard_row``'s layout)."""
        cdef uint64_t rows[16]
        az_bitboards(&self.pos, rows)
        return [rows[i] for i in range(16)]

    def perft(self, int depth):
        """Leaf count of the legal move tree ``depth`` plies deep."""
        return _perft(&self.pos, depth)

    def policy_index(self, int code):
        """The policy index the search gives move ``code`` here (``engine.encoding.move_to_index``'s)."""
        return policy_index(&self.pos, code, self.pos.turn == AZ_BLACK)


cdef int64_t _perft(const az_pos* pos, int depth) nogil:
    """Leaf count below ``pos``, counting the last ply's moves without playing them."""
    cdef uint16_t moves[MAX_MOVES]
    cdef int n = az_legal_moves(pos, moves)
    cdef int64_t total = 0
    cdef az_pos child
    if depth <= 1:
        return n if depth == 1 else 1
    for i in range(n):
        child = pos[0]
        az_make_move(&child, moves[i])
        total += _perft(&child, depth - 1)
    return total


cpdef int encode_move(object move):
    """Pack a chess.Move into 15 bits: from | to << 6 | promotion << 12 (python-chess piece type 2..5, or 0)."""
    return move.from_square | (move.to_square << 6) | ((move.promotion or 0) << 12)


cdef list _MOVES = [None] * (1 << 15)


cpdef object decode_move(int code):
    """The chess.Move of a packed move code (Move objects are immutable and made once per code)."""
    move = _MOVES[code]
    if move is None:
        move = chess.Move(code & 63, (code >> 6) & 63, _PROMO_PIECE[(code >> 12) & 7])
        _MOVES[code] = move
    return move


cdef inline int policy_index(const az_pos* pos, int code, bint black):
    cdef int src = code & 63
    cdef int dst = (code >> 6) & 63
    if pos.chess960 and (pos.color[pos.turn] >> dst) & 1:  # castling, king takes rook: see castling_target
        dst = castling_target(src, dst)
    if black:
        src ^= 56
        dst ^= 56
    return PLANE_OF[src][dst] * 64 + src


cdef inline int castling_target(int king, int rook):
    """The square a Chess960 castling move's policy index points to (``engine.encoding.move_to_index``):
    the king's destination on the c- or g-file, or the rook's square when the king does not move."""
    cdef int target = (king & 56) + (2 if rook < king else 6)
    return rook if target == king else target
