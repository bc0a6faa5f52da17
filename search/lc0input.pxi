# Part of the _mcts extension (included by _mcts.pyx): lc0's 112 input planes and 1858-move policy index.
#
# For an evaluator whose ``input_format`` is lc0's (``engine.interface.LC0_INPUT``) the gatherer builds what
# ``engine.nets.lc0.encoding.encode_lc0_batch`` builds from a python-chess board with its move stack, from
# the positions on the path from the root to the leaf and, for the slots before the root, from the game's
# positions the driver hands over (``BatchRunner.set_lc0_history``). No position on the path below the root
# repeats an earlier one (the gatherer makes those terminal draws first), so only the root and the slots
# before it can carry lc0's repetition plane.

DEF LC0_HISTORY = 8
DEF LC0_PLANES_PER_BOARD = 13
DEF LC0_AUX = 104        # first plane after the history: castling, side to move, rule 50, zeros, ones
DEF LC0_NUM_PLANES = 112

cdef extern from *:
    """
    #define AZ_ALL_SQUARES 0xFFFFFFFFFFFFFFFFULL
    #define AZ_LC0_KEY_SEED 0x6C63302D31313250ULL   /* lc0 inputs' cache keys start apart from position keys */
    #define AZ_LC0_REPEATED_MARK 0x5DEECE66D1234567ULL
    #define AZ_GOLDEN 0x9E3779B97F4A7C15ULL
    """
    const uint64_t ALL_SQUARES "AZ_ALL_SQUARES"
    const uint64_t LC0_KEY_SEED "AZ_LC0_KEY_SEED"
    const uint64_t LC0_REPEATED_MARK "AZ_LC0_REPEATED_MARK"
    const uint64_t GOLDEN "AZ_GOLDEN"
    uint64_t __builtin_bswap64(uint64_t) nogil

cdef struct Lc0Slot:
    az_pos pos           # the position the slot shows
    uint64_t key         # its position key
    uint8_t present      # 0: an empty slot (and every older one)
    uint8_t repeated     # lc0's repetition plane: the position occurred before

# lc0 move index by [from][to][promotion column] from the side to move's view (engine.nets.lc0.policy)
cdef int16_t LC0_INDEX[64][64][4]
# python-chess promotion piece type -> column: 0 none or knight, 1 queen, 2 rook, 3 bishop
cdef int LC0_PROMOTION_COLUMN[8]


def _init_lc0_tables(index_of_squares):
    """Load ``engine.nets.lc0.policy.INDEX_OF_SQUARES`` ((64, 64, 4) int16) into the C table."""
    cdef int a, b, c
    for a in range(8):
        LC0_PROMOTION_COLUMN[a] = 0
    LC0_PROMOTION_COLUMN[3], LC0_PROMOTION_COLUMN[4], LC0_PROMOTION_COLUMN[5] = 3, 2, 1
    for a in range(64):
        for b in range(64):
            for c in range(4):
                LC0_INDEX[a][b][c] = index_of_squares[a, b, c]


cdef inline int lc0_policy_index(const az_pos* pos, int code) noexcept nogil:
    """lc0's index in [0, 1858) of move ``code`` at ``pos``: castling as king takes rook, a knight promotion
    as the plain pawn move, squares mirrored for black."""
    cdef int src = code & 63
    cdef int dst = (code >> 6) & 63
    cdef int df = (dst & 7) - (src & 7)
    if not pos.chess960 and (pos.pieces[AZ_KING] >> src) & 1 and (df == 2 or df == -2):
        dst = (src & 56) + (7 if df > 0 else 0)
    if pos.turn == AZ_BLACK:
        src ^= 56
        dst ^= 56
    return LC0_INDEX[src][dst][LC0_PROMOTION_COLUMN[(code >> 12) & 7]]


cdef inline uint64_t _lc0_mix(uint64_t h, uint64_t x) noexcept nogil:
    h = (h ^ x) * GOLDEN
    return h ^ (h >> 31)


cdef inline void _castling_sides(const az_pos* pos, int color, bint* queenside, bint* kingside) noexcept nogil:
    """python-chess's has_queenside / has_kingside_castling_rights: a castling rook on the king's a- / h-side."""
    cdef uint64_t backrank = <uint64_t> 0xFF if color == AZ_WHITE else (<uint64_t> 0xFF) << 56
    cdef uint64_t king = pos.pieces[AZ_KING] & pos.color[color] & backrank
    cdef uint64_t rooks = pos.castling & backrank
    queenside[0] = king != 0 and (rooks & (king - 1)) != 0
    kingside[0] = king != 0 and (rooks & ~(king | (king - 1))) != 0


cdef uint64_t lc0_rows(const az_pos* ring, const uint64_t* ring_keys, int depth, const Lc0Slot* before,
                       uint64_t* out) nogil:
    """lc0's 112 bitboards of the leaf at ``depth`` into ``out``, seen from its side to move (mirrored for
    black); returns the NN-cache key of this input (every slot's position and repetition flag, rule 50).

    ``ring[p & 7]`` / ``ring_keys[p & 7]``: the position at depth ``p`` of the path and its key, for
    ``p`` in (depth - 8, depth]; ``before[j]``: the game's position ``j`` plies before the root (0: the root).
    Plane 109 (rule 50) stays zero here: the caller sends the count apart.
    """
    cdef const az_pos* leaf = &ring[depth & 7]
    cdef const az_pos* shown
    cdef int us = leaf.turn
    cdef int them = 1 - us
    cdef int k, t, p, base, shown_slots = 0
    cdef bint repeated, queenside, kingside
    cdef uint64_t key = LC0_KEY_SEED, slot_key
    for k in range(LC0_NUM_PLANES):
        out[k] = 0
    for k in range(LC0_HISTORY):
        p = depth - k
        if p > 0:
            shown = &ring[p & 7]
            repeated = False
            slot_key = ring_keys[p & 7]
        else:
            if not before[-p].present:
                break
            shown = &before[-p].pos
            repeated = before[-p].repeated
            slot_key = before[-p].key
        base = k * LC0_PLANES_PER_BOARD
        for t in range(6):
            out[base + t] = shown.pieces[t] & shown.color[us]
            out[base + 6 + t] = shown.pieces[t] & shown.color[them]
        if repeated:
            out[base + 12] = ALL_SQUARES
        key = _lc0_mix(key, slot_key ^ (LC0_REPEATED_MARK if repeated else 0))
        shown_slots += 1
    _castling_sides(leaf, us, &queenside, &kingside)
    out[LC0_AUX + 0] = ALL_SQUARES if queenside else 0
    out[LC0_AUX + 1] = ALL_SQUARES if kingside else 0
    _castling_sides(leaf, them, &queenside, &kingside)
    out[LC0_AUX + 2] = ALL_SQUARES if queenside else 0
    out[LC0_AUX + 3] = ALL_SQUARES if kingside else 0
    out[LC0_AUX + 4] = ALL_SQUARES if us == AZ_BLACK else 0
    out[LC0_AUX + 7] = ALL_SQUARES
    if us == AZ_BLACK:
        for k in range(LC0_NUM_PLANES):
            out[k] = __builtin_bswap64(out[k])
    return _lc0_mix(_lc0_mix(key, <uint64_t> shown_slots), <uint64_t> leaf.halfmove)


cdef void _set_lc0_slots(Lc0Slot* before, object slots) except *:
    """Fill ``before[0..7]`` from ``engine.nets.lc0.encoding.history_slots``' list of (board, repeated) / None."""
    cdef int j
    for j in range(LC0_HISTORY):
        shown = slots[j] if j < len(slots) else None
        before[j].present = 0
        before[j].repeated = 0
        before[j].key = 0
        if shown is None:
            continue
        before[j].pos = _position_of(shown[0])
        before[j].key = az_key(&before[j].pos)
        before[j].present = 1
        before[j].repeated = 1 if shown[1] else 0
