# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""PUCT Monte Carlo tree search over C arrays.

The tree is two growable arrays of C structs: nodes and edges. A node owns a contiguous run of edges
(its legal moves, sorted by prior) and holds its visit count, value sum and virtual loss; an edge holds
only its move, prior and the index of its child node (-1 until the edge is first visited), so that
the many edges never visited cost little. Node: 32 bytes; edge: 12 bytes. The arrays grow up to a byte budget
(``Tree.set_budget``); once it is spent the tree adds no edges, and new leaves only carry their value.

Network results are kept in :class:`NNCache`, a fixed-size C table keyed by the position key, holding
per legal move the quantized logit (relative to the best move) instead of the priors.

Rules come from ``movegen.c``: each leaf position is rebuilt by playing the path's moves on a copy of
the root position (a C struct), its legal moves generated, and terminal states (mate, stalemate,
insufficient material, 50 moves, repetition against the game history and the path) recognised here,
with no Python object on the way. Network evaluations go through Python callables in batches gathered
with virtual loss; see ``search.mcts`` for the driver. :class:`Position` exposes the C rules to Python
for the tests, which check them against python-chess.
"""

from libc.math cimport exp, log, sqrt
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport calloc, free, malloc, realloc
from libc.string cimport memcpy

from collections import namedtuple

import chess
import numpy as np

cimport numpy as cnp

cnp.import_array()

# Node states
cdef enum:
    UNEXPANDED = 0
    PENDING = 1
    EXPANDED = 2
    TERMINAL = 3

# Outcomes of selecting one playout
cdef enum:
    SEL_LEAF = 0
    SEL_COLLISION = 1
    SEL_TERMINAL = 2
    SEL_REVISIT = 3  # the budget holds no new node below this expanded one: back up its own value again

DEF MAX_MOVES = 256
DEF MAX_DEPTH = 500      # longest playout path in plies
DEF CACHE_MOVES = 60     # positions with more legal moves are not cached
DEF LOGIT_SCALE = 1024.0  # NN cache: logits relative to the best move in steps of 1/1024
DEF NODE_BUDGET_SHARE = 8  # 1/8 of the tree's byte budget goes to nodes, the rest to edges
DEF QUEEN_PROMOTION = 5  # promotion field of a move code: python-chess's piece type
DEF PROBE_CACHE_SIZE = 1000000  # tablebase results kept by position key; emptied when full

cdef struct Edge:
    int32_t child        # the node this move leads to, -1 until first visited
    float prior
    uint16_t move

cdef struct Node:
    double wsum          # value sum from this node's side to move, own evaluation included
    uint64_t key         # position key (transpositions, repetitions)
    int32_t first_edge
    int32_t n            # visits through this node, own evaluation included
    int16_t num_edges
    int16_t mate         # proven result: +(plies+1) side to move mates, -(plies+1) it is mated, 0 unknown
    int16_t vl           # virtual loss: playouts selected through this node and not yet backed up
    uint8_t state
    uint8_t excluded     # root edges outside ``searchmoves`` are skipped (flag on the child's parent)

cdef struct CacheEntry:
    uint64_t key
    float value
    uint16_t num                   # legal moves (0: empty slot)
    uint16_t logit[CACHE_MOVES]    # (best logit - logit) * LOGIT_SCALE per legal move, generation order

MAX_TREE_DEPTH = MAX_DEPTH
NN_CACHE_ENTRY_BYTES = sizeof(CacheEntry)
NODE_UNEXPANDED, NODE_PENDING, NODE_EXPANDED, NODE_TERMINAL = UNEXPANDED, PENDING, EXPANDED, TERMINAL


class NodeStats(namedtuple("NodeStats", "visits value_sum mate state num_edges")):
    """A node: visits, value sum (side to move there), proven mate, state (``NODE_*``), edge count."""

    __slots__ = ()

    @property
    def expanded(self):
        """Whether the node has its edges."""
        return self.state == EXPANDED


EdgeStats = namedtuple("EdgeStats", "move visits value_sum prior child_mate")
EdgeStats.__doc__ = """An edge: packed move, visits, value sum (parent's view), prior, proven mate of the child."""

BestChild = namedtuple("BestChild", "move child")
BestChild.__doc__ = """The most visited edge of a node: its packed move and child node (-1, -1 when none)."""

_PROMO_PIECE = [None, None, chess.KNIGHT, chess.BISHOP, chess.ROOK, chess.QUEEN, None, None]

# Policy plane of (from, to) from the mover's side, -1 where no queen-line or knight move exists.
cdef int16_t PLANE_OF[64][64]


def _init_tables(plane_of):
    cdef int a, b
    for a in range(64):
        for b in range(64):
            PLANE_OF[a][b] = plane_of[a, b]


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


cdef class Tree:
    """The search tree and the PUCT selection / backup over it."""

    cdef Node* nodes
    cdef Edge* edges
    cdef public int32_t num_nodes, num_edges
    cdef int32_t node_cap, edge_cap
    cdef int32_t node_max, edge_max   # capacities the byte budget allows
    cdef public int64_t max_bytes
    cdef public bint full             # the budget holds no more edges: new leaves are not expanded
    # search parameters (set by the driver from SearchParams)
    cdef public double cpuct, cpuct_base, cpuct_factor, fpu_reduction, fpu_reduction_root
    cdef public double underpromotion_penalty
    cdef public double policy_temperature
    # the path of the playout being selected
    cdef int32_t path_edges[MAX_DEPTH]
    cdef int32_t path_nodes[MAX_DEPTH + 1]
    cdef public int path_len
    # keys of the game's positions before the root (repetitions)
    cdef uint64_t* history
    cdef int history_len

    def __cinit__(self):
        self.node_cap = 0
        self.edge_cap = 0
        self.nodes = NULL
        self.edges = NULL
        self.history = NULL
        self.history_len = 0
        self.set_budget(1 << 40)
        self.reset()

    def __dealloc__(self):
        free(self.nodes)
        free(self.edges)
        free(self.history)

    def set_budget(self, int64_t max_bytes):
        """Bound the node and edge arrays to ``max_bytes`` together (1/8 for nodes, the rest for edges)."""
        self.max_bytes = max_bytes
        self.node_max = <int32_t> min(max(256, max_bytes // NODE_BUDGET_SHARE // sizeof(Node)), 1 << 30)
        self.edge_max = <int32_t> min(max(2 * MAX_MOVES, (max_bytes - self.node_max * sizeof(Node)) // sizeof(Edge)),
                                      1 << 30)
        self.full = self.num_edges + MAX_MOVES > self.edge_max

    cdef void _resize(self, int32_t node_cap, int32_t edge_cap) except *:
        cdef Node* nd = <Node*> realloc(self.nodes, node_cap * sizeof(Node))
        if nd == NULL:
            raise MemoryError()
        self.nodes = nd
        self.node_cap = node_cap
        cdef Edge* e = <Edge*> realloc(self.edges, edge_cap * sizeof(Edge))
        if e == NULL:
            raise MemoryError()
        self.edges = e
        self.edge_cap = edge_cap

    def reset(self):
        """Drop the whole tree (its memory goes back); a single unexpanded root remains."""
        self.num_nodes = 0
        self.num_edges = 0
        self._resize(min(1024, self.node_max), min(32768, self.edge_max))
        self.full = MAX_MOVES > self.edge_max
        self._new_node()

    cdef bint nodes_full(self):
        return self.num_nodes >= self.node_max

    cdef int32_t _new_node(self) except -1:
        cdef Node* nd
        cdef int32_t cap
        if self.num_nodes == self.node_cap:
            cap = min(2 * self.node_cap, self.node_max)
            if cap <= self.node_cap:  # past the budget only for the root's children (searchmoves, mates)
                cap = self.node_cap + MAX_MOVES
            nd = <Node*> realloc(self.nodes, cap * sizeof(Node))
            if nd == NULL:
                raise MemoryError()
            self.nodes = nd
            self.node_cap = cap
        nd = &self.nodes[self.num_nodes]
        nd.wsum = 0.0
        nd.key = 0
        nd.first_edge = -1
        nd.n = 0
        nd.num_edges = 0
        nd.mate = 0
        nd.vl = 0
        nd.state = UNEXPANDED
        nd.excluded = 0
        self.num_nodes += 1
        return self.num_nodes - 1

    cdef int32_t _new_edges(self, int count) except -1:
        """Index of ``count`` new edges, or -2 when the budget holds no more (``full`` is set)."""
        cdef Edge* e
        cdef int32_t cap = self.edge_cap
        if self.full or self.num_edges + count > self.edge_max:
            self.full = True
            return -2
        while self.num_edges + count > cap:
            cap = min(2 * cap, self.edge_max)
        if cap != self.edge_cap:
            e = <Edge*> realloc(self.edges, cap * sizeof(Edge))
            if e == NULL:
                raise MemoryError()
            self.edges = e
            self.edge_cap = cap
        self.num_edges += count
        return self.num_edges - count

    def memory_bytes(self):
        """Bytes used by the nodes and edges in use."""
        return self.num_nodes * sizeof(Node) + self.num_edges * sizeof(Edge)

    def allocated_bytes(self):
        """Bytes of the node and edge arrays as allocated (at most the budget, plus the root's children)."""
        return self.node_cap * sizeof(Node) + self.edge_cap * sizeof(Edge)

    def set_root_key(self, key):
        """The root position's key (see ``position_key``), for repetitions along the path."""
        self.nodes[0].key = <uint64_t> (<int64_t> key)

    def set_history(self, keys):
        """Keys of the positions played before the root (oldest first), for repetition detection."""
        free(self.history)
        self.history_len = len(keys)
        self.history = <uint64_t*> malloc(max(1, self.history_len) * sizeof(uint64_t))
        for i, k in enumerate(keys):
            self.history[i] = <uint64_t> (<int64_t> k)

    # ----- selection -------------------------------------------------------------------------

    cdef inline double _cpuct(self, int32_t n):
        return self.cpuct + self.cpuct_factor * log((n + self.cpuct_base) / self.cpuct_base)

    cdef int _select(self, int max_depth):
        """Walk from the root to a leaf, adding virtual loss along the way; fills path_*."""
        cdef int32_t node = 0
        cdef Node* nd
        cdef Edge* e
        cdef int i, best, depth = 0
        cdef double cp, sqrt_n, fpu, q, u, score, best_score, visited_prior, parent_q, w
        cdef int32_t child, nn, vl
        cdef int16_t mate
        cdef Node* cn
        self.path_nodes[0] = 0
        while True:
            nd = &self.nodes[node]
            if nd.state == TERMINAL:
                self.path_len = depth
                return SEL_TERMINAL
            if nd.state == PENDING:
                self.path_len = depth
                return SEL_COLLISION
            if nd.state == UNEXPANDED:
                self.path_len = depth
                return SEL_LEAF
            if depth >= max_depth:
                self.path_len = depth
                return SEL_COLLISION
            # PUCT over the edges of an expanded node
            cp = self._cpuct(nd.n)
            sqrt_n = sqrt(<double> (nd.n if nd.n > 1 else 1))
            visited_prior = 0.0
            for i in range(nd.num_edges):
                e = &self.edges[nd.first_edge + i]
                if e.child >= 0 and self.nodes[e.child].n > 0:
                    visited_prior += e.prior
            parent_q = nd.wsum / nd.n if nd.n > 0 else 0.0
            fpu = parent_q - (self.fpu_reduction_root if node == 0 else self.fpu_reduction) * sqrt(visited_prior)
            best = -1
            best_score = -1e300
            for i in range(nd.num_edges):
                e = &self.edges[nd.first_edge + i]
                child = e.child
                if child >= 0:
                    cn = &self.nodes[child]
                    if cn.excluded:
                        continue
                    nn = cn.n + cn.vl
                    vl = cn.vl
                    w = -cn.wsum  # the parent's view
                    mate = cn.mate
                elif self.nodes_full():
                    continue
                else:
                    nn = 0
                    vl = 0
                    w = 0.0
                    mate = 0
                if mate != 0:
                    q = 2.0 if mate < 0 else -2.0
                elif nn == 0:
                    q = fpu
                else:
                    q = (w - vl) / nn
                u = cp * e.prior * sqrt_n / (1 + nn)
                score = q + u
                if score > best_score:
                    best_score = score
                    best = i
            if best < 0:
                self.path_len = depth
                return SEL_REVISIT if self.nodes_full() and node != 0 else SEL_COLLISION
            best += nd.first_edge
            e = &self.edges[best]
            self.path_edges[depth] = best
            if e.child < 0:
                child = self._new_node()  # may move the node array: nd is stale from here
                e.child = child
            depth += 1
            node = e.child
            self.nodes[node].vl += 1
            self.path_nodes[depth] = node

    cdef void _undo_virtual_loss(self):
        cdef int i
        for i in range(1, self.path_len + 1):
            self.nodes[self.path_nodes[i]].vl -= 1

    cdef void _backup(self, double value, int remove_vl):
        """Back up ``value`` (side to move at the leaf) along the current path."""
        cdef int i
        cdef Node* nd = &self.nodes[self.path_nodes[self.path_len]]
        nd.n += 1
        nd.wsum += value
        for i in range(self.path_len - 1, -1, -1):
            value = -value
            if remove_vl:
                self.nodes[self.path_nodes[i + 1]].vl -= 1
            nd = &self.nodes[self.path_nodes[i]]
            nd.n += 1
            nd.wsum += value
        self._propagate_mate()

    cdef void _propagate_mate(self):
        """Update proven results of the path's nodes from their children, bottom-up."""
        cdef int i, j, worst_loss, best_win, unknown
        cdef Node* nd
        cdef Edge* e
        cdef int16_t m
        for i in range(self.path_len - 1, -1, -1):
            nd = &self.nodes[self.path_nodes[i]]
            if nd.mate != 0 or nd.state != EXPANDED:
                continue
            best_win = 0      # shortest win (plies+1) through a child that is mated
            worst_loss = 0    # longest loss if every child mates
            unknown = 0
            for j in range(nd.num_edges):
                e = &self.edges[nd.first_edge + j]
                if e.child < 0:
                    unknown = 1
                    continue
                m = self.nodes[e.child].mate
                if m < 0:
                    if best_win == 0 or -m + 1 < best_win:
                        best_win = -m + 1
                elif m > 0:
                    if m + 1 > worst_loss:
                        worst_loss = m + 1
                else:
                    unknown = 1
            if best_win:
                nd.mate = best_win
            elif not unknown and worst_loss:
                nd.mate = -worst_loss
            else:
                return

    cdef bint _repeats(self, uint64_t key, int depth):
        """True when the position at ``depth`` on the path occurred before (path or game history)."""
        cdef int i
        for i in range(depth - 2, -1, -2):
            if self.nodes[self.path_nodes[i]].key == key:
                return True
        for i in range(self.history_len):
            if self.history[i] == key:
                return True
        return False

    # ----- expansion -------------------------------------------------------------------------

    cdef bint _expand(self, int32_t node, int num, int32_t* codes, float* priors) except -1:
        """Give ``node`` its edges, sorted by prior (highest first); False when the budget holds no more."""
        cdef int32_t first = self._new_edges(num)
        cdef int i, j
        cdef Edge tmp
        cdef Edge* e
        if first < 0:
            return False
        for i in range(num):
            e = &self.edges[first + i]
            e.child = -1
            e.prior = priors[i]
            e.move = <uint16_t> codes[i]
        for i in range(1, num):  # insertion sort: at most 218 moves
            tmp = self.edges[first + i]
            j = i - 1
            while j >= 0 and self.edges[first + j].prior < tmp.prior:
                self.edges[first + j + 1] = self.edges[first + j]
                j -= 1
            self.edges[first + j + 1] = tmp
        self.nodes[node].first_edge = first
        self.nodes[node].num_edges = num
        self.nodes[node].state = EXPANDED
        return True

    # ----- Python-facing queries ------------------------------------------------------------

    def root_edges(self, int32_t node=0):
        """The :class:`EdgeStats` of the edges of ``node`` (root moves outside ``searchmoves`` left out)."""
        cdef Node* nd = &self.nodes[node]
        cdef Edge* e
        out = []
        for i in range(nd.num_edges):
            e = &self.edges[nd.first_edge + i]
            if e.child >= 0 and self.nodes[e.child].excluded:
                continue
            if e.child >= 0:
                out.append(EdgeStats(e.move, self.nodes[e.child].n, -self.nodes[e.child].wsum, e.prior,
                                     self.nodes[e.child].mate))
            else:
                out.append(EdgeStats(e.move, 0, 0.0, e.prior, 0))
        return out

    def child_of(self, int32_t node, int move_code):
        """The child node reached from ``node`` by ``move_code``, or -1."""
        cdef Node* nd = &self.nodes[node]
        cdef int i
        for i in range(nd.num_edges):
            if self.edges[nd.first_edge + i].move == move_code:
                return self.edges[nd.first_edge + i].child
        return -1

    def node_stats(self, int32_t node=0):
        """The :class:`NodeStats` of ``node``."""
        cdef Node* nd = &self.nodes[node]
        return NodeStats(nd.n, nd.wsum, nd.mate, nd.state, nd.num_edges)

    def best_child_move(self, int32_t node):
        """The :class:`BestChild` (move code, child) of the most visited edge of ``node``, or (-1, -1)."""
        cdef Node* nd = &self.nodes[node]
        cdef int i, best = -1
        cdef int32_t best_n = 0, child
        for i in range(nd.num_edges):
            child = self.edges[nd.first_edge + i].child
            if child >= 0 and self.nodes[child].n > best_n:
                best_n = self.nodes[child].n
                best = i
        if best < 0:
            return BestChild(-1, -1)
        return BestChild(self.edges[nd.first_edge + best].move, self.edges[nd.first_edge + best].child)

    def set_excluded(self, allowed_codes):
        """Restrict the root to ``allowed_codes`` (``searchmoves``); None allows every move."""
        cdef Node* nd = &self.nodes[0]
        cdef Edge* e
        cdef int i
        for i in range(nd.num_edges):
            e = &self.edges[nd.first_edge + i]
            if e.child < 0:
                e.child = self._new_node()
                nd = &self.nodes[0]
            self.nodes[e.child].excluded = allowed_codes is not None and e.move not in allowed_codes

    def mark_mated(self, int move_code):
        """Record that the root move ``move_code`` checkmates (a terminal, proven child)."""
        cdef Node* nd = &self.nodes[0]
        cdef Edge* e
        cdef int32_t child
        for i in range(nd.num_edges):
            e = &self.edges[nd.first_edge + i]
            if e.move == move_code:
                if e.child < 0:
                    child = self._new_node()  # may move the node array: ``nd`` is stale after this
                    e.child = child
                self.nodes[e.child].state = TERMINAL
                self.nodes[e.child].mate = -1
                self.nodes[0].mate = 2
                return

    def reroot(self, int32_t new_root):
        """Keep only the subtree under ``new_root`` (tree reuse); it becomes node 0. Returns its visits."""
        cdef Node* old_nodes = self.nodes
        cdef Edge* old_edges = self.edges
        cdef int32_t old_num_nodes = self.num_nodes
        cdef int32_t head = 0, src, i, first
        cdef int32_t* queue
        if new_root <= 0 or new_root >= old_num_nodes:
            return self.nodes[0].n if new_root == 0 else 0
        self.nodes = <Node*> malloc(self.node_cap * sizeof(Node))
        self.edges = <Edge*> malloc(self.edge_cap * sizeof(Edge))
        queue = <int32_t*> malloc(old_num_nodes * sizeof(int32_t))
        if self.nodes == NULL or self.edges == NULL or queue == NULL:
            raise MemoryError()
        # breadth-first copy; queue[k] is the old index of new node k
        self.num_nodes = 1
        self.num_edges = 0
        queue[0] = new_root
        self.nodes[0] = old_nodes[new_root]
        self.nodes[0].excluded = 0
        self.nodes[0].vl = 0
        while head < self.num_nodes:
            src = queue[head]
            if old_nodes[src].num_edges > 0 and old_nodes[src].first_edge >= 0:
                first = self.num_edges
                memcpy(&self.edges[first], &old_edges[old_nodes[src].first_edge],
                       old_nodes[src].num_edges * sizeof(Edge))
                self.num_edges += old_nodes[src].num_edges
                self.nodes[head].first_edge = first
                for i in range(old_nodes[src].num_edges):
                    if self.edges[first + i].child >= 0:
                        queue[self.num_nodes] = self.edges[first + i].child
                        self.nodes[self.num_nodes] = old_nodes[self.edges[first + i].child]
                        self.nodes[self.num_nodes].vl = 0
                        if self.nodes[self.num_nodes].state == PENDING:
                            self.nodes[self.num_nodes].state = UNEXPANDED
                        self.edges[first + i].child = self.num_nodes
                        self.num_nodes += 1
            head += 1
        free(queue)
        free(old_nodes)
        free(old_edges)
        self.full = self.num_edges + MAX_MOVES > self.edge_max
        return self.nodes[0].n


cdef class Batch:
    """Buffers for one batch of pending leaves: their paths, legal moves and policy indices."""

    cdef public int count
    cdef int cap
    cdef int32_t[:, ::1] path_edges
    cdef int32_t[:, ::1] path_nodes
    cdef int32_t[::1] path_len
    cdef int32_t[:, ::1] codes
    cdef int32_t[:, ::1] index
    cdef float[:, ::1] penalty
    cdef int32_t[::1] num
    cdef uint64_t[::1] key
    cdef uint64_t[:, ::1] rows
    cdef uint8_t[::1] black

    def __init__(self, int cap):
        self.count = 0
        self.cap = cap
        self.path_edges = np.zeros((cap, MAX_DEPTH), dtype=np.int32)
        self.path_nodes = np.zeros((cap, MAX_DEPTH + 1), dtype=np.int32)
        self.path_len = np.zeros(cap, dtype=np.int32)
        self.codes = np.zeros((cap, MAX_MOVES), dtype=np.int32)
        self.index = np.zeros((cap, MAX_MOVES), dtype=np.int32)
        self.penalty = np.zeros((cap, MAX_MOVES), dtype=np.float32)
        self.num = np.zeros(cap, dtype=np.int32)
        self.key = np.zeros(cap, dtype=np.uint64)
        self.rows = np.zeros((cap, 16), dtype=np.uint64)
        self.black = np.zeros(cap, dtype=np.uint8)

    @property
    def capacity(self):
        return self.cap

    cdef void save_path(self, int slot, Tree t):
        cdef int i
        for i in range(t.path_len):
            self.path_edges[slot, i] = t.path_edges[i]
            self.path_nodes[slot, i] = t.path_nodes[i]
        self.path_nodes[slot, t.path_len] = t.path_nodes[t.path_len]
        self.path_len[slot] = t.path_len

    cdef void load_path(self, int slot, Tree t):
        cdef int i
        t.path_len = self.path_len[slot]
        for i in range(t.path_len):
            t.path_edges[i] = self.path_edges[slot, i]
            t.path_nodes[i] = self.path_nodes[slot, i]
        t.path_nodes[t.path_len] = self.path_nodes[slot, t.path_len]


cdef class NNCache:
    """Network results by position key: a fixed-size table, one entry per slot, the newest one wins.

    An entry holds the value and, per legal move in generation order, the logit (underpromotion penalty
    applied) below the best move's, in steps of 1/``LOGIT_SCALE``; the priors are made from them at the
    policy temperature in effect. Positions with more than ``CACHE_MOVES`` legal moves are not stored.
    """

    cdef CacheEntry* table
    cdef public int64_t size, used

    def __cinit__(self, int64_t size=0):
        self.table = NULL
        self.size = 0
        self.used = 0
        self.resize(size)

    def __dealloc__(self):
        free(self.table)

    def resize(self, int64_t size):
        """Hold ``size`` entries (0: no cache); the entries are dropped."""
        free(self.table)
        self.table = NULL
        self.size = 0
        self.used = 0
        if size > 0:
            self.table = <CacheEntry*> calloc(size, sizeof(CacheEntry))
            if self.table == NULL:
                raise MemoryError()
            self.size = size

    def clear(self):
        """Drop every entry (its memory goes back to the system until used again)."""
        self.resize(self.size)

    def __len__(self):
        return self.used

    def memory_bytes(self):
        """Bytes of the entries in use."""
        return self.used * sizeof(CacheEntry)

    cdef CacheEntry* find(self, uint64_t key, int num):
        cdef CacheEntry* entry
        if self.size == 0:
            return NULL
        entry = &self.table[key % <uint64_t> self.size]
        if entry.num == num and entry.key == key:
            return entry
        return NULL

    cdef void store(self, uint64_t key, float value, int num, const double* logits, double best):
        cdef CacheEntry* entry
        cdef int i
        cdef double step
        if self.size == 0 or num > CACHE_MOVES or num <= 0:
            return
        entry = &self.table[key % <uint64_t> self.size]
        if entry.num == 0:
            self.used += 1
        entry.key = key
        entry.value = value
        entry.num = <uint16_t> num
        for i in range(num):
            step = (best - logits[i]) * LOGIT_SCALE + 0.5
            entry.logit[i] = <uint16_t> (step if step < 65535.0 else 65535.0)


cdef void _softmax(const double* x, int n, double inv_temp, float* out):
    """``out`` = softmax(``x`` * ``inv_temp``) over n values whose maximum is 0."""
    cdef double total = 0.0, w
    cdef int i
    for i in range(n):
        w = exp(x[i] * inv_temp)
        out[i] = <float> w
        total += w
    for i in range(n):
        out[i] = <float> (out[i] / total)


cdef class BatchRunner:
    """Gathers batches of leaves from a :class:`Tree` and applies network results to them.

    ``gather`` selects playouts (virtual loss on their paths), rebuilds each leaf position from the
    root position in C, resolves terminal and cached leaves at once and returns the rest as encoded
    bitboards for one evaluator call; ``apply`` expands and backs up those leaves.
    """

    cdef public Tree tree
    cdef az_pos root
    cdef public NNCache cache
    cdef public int64_t playouts, sum_depth
    cdef public int max_depth_seen
    cdef public int collisions, cache_hits, terminal_hits
    cdef public object tablebases     # search.tablebase.Tablebases or None
    cdef public int tb_pieces         # probe positions with at most this many pieces (0: no tablebases)
    cdef public object tb_cache       # dict: position key -> WDL value (1, 0, -1) or None (no table)
    cdef public int64_t tb_hits

    def __init__(self, Tree tree, board, NNCache cache):
        self.tree = tree
        self.root = _position_of(board)
        self.cache = cache
        self.playouts = 0
        self.sum_depth = 0
        self.max_depth_seen = 0
        self.collisions = 0
        self.cache_hits = 0
        self.terminal_hits = 0
        self.set_tablebases(None)

    def set_tablebases(self, tablebases):
        """Probe ``tablebases`` (``search.tablebase.Tablebases``, or None for none) at the leaves."""
        self.tablebases = tablebases
        self.tb_pieces = tablebases.max_pieces if tablebases is not None else 0
        self.tb_cache = {}
        self.tb_hits = 0

    cdef object _tablebase_value(self, const az_pos* pos, uint64_t key):
        """WDL value (1, 0, -1) of the side to move at ``pos`` from the tables, or None; cached."""
        value = self.tb_cache.get(<int64_t> key, self)  # the runner itself marks "not probed yet"
        if value is self:
            if len(self.tb_cache) >= PROBE_CACHE_SIZE:
                self.tb_cache.clear()
            value = self.tablebases.wdl_value(_board_of(pos))
            self.tb_cache[<int64_t> key] = value
        return value

    def set_board(self, board):
        """The root position (a python-chess Board; the game's history goes to ``Tree.set_history``)."""
        self.root = _position_of(board)

    cdef void _count_playout(self, int depth):
        self.playouts += 1
        self.sum_depth += depth
        if depth > self.max_depth_seen:
            self.max_depth_seen = depth

    def gather(self, Batch batch, int want, int max_collisions, int max_playouts=-1):
        """Select up to ``want`` leaves that need the network.

        Returns ``(count, bitboards, black)``: the pending leaves' 16 bitboards each (uint64
        ``(count, 16)``) and whether black is to move there. Terminal and cached leaves met on the
        way are backed up at once and counted in ``playouts``. ``max_playouts`` >= 0 caps the
        pending leaves plus those resolved at once (a ``nodes`` limit is then met exactly). Once the
        tree is full, leaves are still evaluated (cache or network) and backed up, but not expanded.
        """
        cdef Tree t = self.tree
        cdef int count = 0, attempts = 0, outcome, depth, i, n
        cdef int32_t leaf
        cdef Node* nd
        cdef az_pos pos
        cdef uint16_t moves[MAX_MOVES]
        cdef CacheEntry* entry
        cdef uint64_t ukey
        cdef int code, promotion
        cdef bint black
        cdef double value
        cdef double inv_temp = 1.0 / t.policy_temperature if t.policy_temperature > 0 else 1.0
        cdef int32_t codes[CACHE_MOVES]
        cdef double relative[CACHE_MOVES]
        cdef float priors[CACHE_MOVES]
        cdef int collisions = 0
        cdef int64_t start_playouts = self.playouts
        if want > batch.cap:
            want = batch.cap
        while count < want and attempts < 2 * want + 8:
            if max_playouts >= 0 and count + (self.playouts - start_playouts) >= max_playouts:
                break
            attempts += 1
            outcome = t._select(MAX_DEPTH)
            depth = t.path_len
            if outcome == SEL_COLLISION:
                t._undo_virtual_loss()
                self.collisions += 1
                collisions += 1
                if collisions >= max_collisions:
                    break
                continue
            leaf = t.path_nodes[depth]
            if outcome == SEL_TERMINAL or outcome == SEL_REVISIT:
                nd = &t.nodes[leaf]
                # mated, else its own value: a terminal one (draw 0, tablebase result) or, on a revisit, its mean
                value = -1.0 if nd.mate < 0 else (nd.wsum / nd.n if nd.n > 0 else 0.0)
                t._backup(value, 1)
                self.terminal_hits += 1
                self._count_playout(depth)
                continue
            # rebuild the leaf position
            pos = self.root
            for i in range(depth):
                az_make_move(&pos, t.edges[t.path_edges[i]].move)
            ukey = az_key(&pos)
            t.nodes[leaf].key = ukey
            n = az_legal_moves(&pos, moves)
            value = 2.0  # marker: not terminal
            if n == 0:
                value = -1.0 if az_in_check(&pos) else 0.0
                if value < 0:
                    t.nodes[leaf].mate = -1
            elif depth > 0 and (pos.halfmove >= 100 or t._repeats(ukey, depth)
                                or az_insufficient_material(&pos)):
                value = 0.0
            elif depth > 0 and self.tb_pieces > 0 and pos.castling == 0 \
                    and __builtin_popcountll(pos.color[0] | pos.color[1]) <= self.tb_pieces:
                tb_value = self._tablebase_value(&pos, ukey)
                if tb_value is not None:
                    value = tb_value
                    self.tb_hits += 1
            if value <= 1.0:
                t.nodes[leaf].state = TERMINAL
                t._backup(value, 1)
                self.terminal_hits += 1
                self._count_playout(depth)
                continue
            entry = self.cache.find(ukey, n)
            if entry != NULL:
                for i in range(n):
                    codes[i] = moves[i]
                    relative[i] = -entry.logit[i] / LOGIT_SCALE
                _softmax(relative, n, inv_temp, priors)
                t._expand(leaf, n, codes, priors)
                t._backup(entry.value, 1)
                self.cache_hits += 1
                self._count_playout(depth)
                continue
            black = pos.turn == AZ_BLACK
            az_bitboards(&pos, &batch.rows[count, 0])
            batch.black[count] = black
            batch.save_path(count, t)
            batch.num[count] = n
            batch.key[count] = ukey
            for i in range(n):
                code = moves[i]
                promotion = code >> 12
                batch.codes[count, i] = code
                batch.index[count, i] = policy_index(&pos, code, black)
                batch.penalty[count, i] = t.underpromotion_penalty if promotion and promotion != QUEEN_PROMOTION else 0.0
            t.nodes[leaf].state = PENDING
            count += 1
        batch.count = count
        if count == 0:
            return 0, None, None
        return (count, np.array(batch.rows[:count], dtype=np.uint64),
                np.array(batch.black[:count], dtype=bool))

    def apply(self, Batch batch, float[:, ::1] logits, float[::1] values):
        """Expand the batch's pending leaves with the network's logits and values; back them up.

        A leaf's priors are the softmax over its legal moves of (logit - underpromotion penalty) /
        ``tree.policy_temperature``. The logits go to the cache, which keeps them apart from the
        temperature. A leaf the full tree cannot expand keeps only its value (it stays unexpanded).
        """
        cdef Tree t = self.tree
        cdef int slot, i, n
        cdef int32_t leaf
        cdef double mx, x
        cdef double inv_temp = 1.0 / t.policy_temperature if t.policy_temperature > 0 else 1.0
        cdef double relative[MAX_MOVES]
        cdef double raw[MAX_MOVES]
        cdef float priors[MAX_MOVES]
        cdef int32_t codes[MAX_MOVES]
        for slot in range(batch.count):
            batch.load_path(slot, t)
            leaf = t.path_nodes[t.path_len]
            n = batch.num[slot]
            mx = -1e30
            for i in range(n):
                x = logits[slot, batch.index[slot, i]] - batch.penalty[slot, i]
                raw[i] = x
                codes[i] = batch.codes[slot, i]
                if x > mx:
                    mx = x
            for i in range(n):
                relative[i] = raw[i] - mx
            _softmax(relative, n, inv_temp, priors)
            if not t._expand(leaf, n, codes, priors):
                t.nodes[leaf].state = UNEXPANDED
            t._backup(values[slot], 1)
            self._count_playout(t.path_len)
            self.cache.store(batch.key[slot], values[slot], n, raw, mx)
        batch.count = 0

    def cancel(self, Batch batch):
        """Forget the batch's pending leaves (a search stopped before their evaluation came back)."""
        cdef Tree t = self.tree
        cdef int slot
        for slot in range(batch.count):
            batch.load_path(slot, t)
            t._undo_virtual_loss()
            t.nodes[t.path_nodes[t.path_len]].state = UNEXPANDED
        batch.count = 0
