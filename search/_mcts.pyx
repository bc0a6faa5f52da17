# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""PUCT Monte Carlo tree search over C arrays.

The tree is two growable arrays of C structs: nodes and edges. A node owns a contiguous run of edges
(its legal moves, sorted by prior); an edge holds its move, prior, visit count, value sum (from the
view of the side to move at the edge's parent), virtual loss and the index of its child node (-1 until
the edge is first visited). Node: 32 bytes; edge: 24 bytes (sizes in ``NODE_BYTES`` / ``EDGE_BYTES``).

Rules come from ``movegen.c``: each leaf position is rebuilt by playing the path's moves on a copy of
the root position (a C struct), its legal moves generated, and terminal states (mate, stalemate,
insufficient material, 50 moves, repetition against the game history and the path) recognised here,
with no Python object on the way. Network evaluations go through Python callables in batches gathered
with virtual loss; see ``search.mcts`` for the driver. :class:`Position` exposes the C rules to Python
for the tests, which check them against python-chess.
"""

from libc.math cimport exp, log, sqrt
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport free, malloc, realloc
from libc.string cimport memcpy

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
    SEL_FULL = 3

DEF MAX_MOVES = 256
DEF MAX_DEPTH = 512
DEF QUEEN_PROMOTION = 5  # promotion field of a move code: python-chess's piece type
DEF PROBE_CACHE_SIZE = 1000000  # tablebase results kept by position key; emptied when full

cdef struct Edge:
    double w
    int32_t child
    int32_t n
    float prior
    uint16_t move
    int16_t vl

cdef struct Node:
    double wsum          # value sum from this node's side to move, own evaluation included
    uint64_t key         # position key (transpositions, repetitions)
    int32_t first_edge
    int32_t n            # visits through this node, own evaluation included
    int16_t num_edges
    int16_t mate         # proven result: +(plies+1) side to move mates, -(plies+1) it is mated, 0 unknown
    uint8_t state
    uint8_t excluded     # root edges outside ``searchmoves`` are skipped (flag on the child's parent)

NODE_BYTES = sizeof(Node)
EDGE_BYTES = sizeof(Edge)

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
    cdef public int64_t max_bytes
    cdef public bint full
    # search parameters
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
        self.node_cap = 1024
        self.edge_cap = 32768
        self.nodes = <Node*> malloc(self.node_cap * sizeof(Node))
        self.edges = <Edge*> malloc(self.edge_cap * sizeof(Edge))
        self.history = NULL
        self.history_len = 0
        if self.nodes == NULL or self.edges == NULL:
            raise MemoryError()
        self.max_bytes = 1 << 40
        self.cpuct = 1.745
        self.cpuct_base = 38739.0
        self.cpuct_factor = 3.894
        self.fpu_reduction = 0.33
        self.fpu_reduction_root = 0.33
        self.underpromotion_penalty = 3.0
        self.policy_temperature = 1.0
        self.reset()

    def __dealloc__(self):
        free(self.nodes)
        free(self.edges)
        free(self.history)

    def reset(self):
        """Drop the whole tree; a single unexpanded root remains."""
        self.num_nodes = 0
        self.num_edges = 0
        self.full = False
        self._new_node()

    cdef int32_t _new_node(self) except -1:
        cdef Node* nd
        if self.num_nodes == self.node_cap:
            self.node_cap *= 2
            nd = <Node*> realloc(self.nodes, self.node_cap * sizeof(Node))
            if nd == NULL:
                raise MemoryError()
            self.nodes = nd
        nd = &self.nodes[self.num_nodes]
        nd.wsum = 0.0
        nd.key = 0
        nd.first_edge = -1
        nd.n = 0
        nd.num_edges = 0
        nd.mate = 0
        nd.state = UNEXPANDED
        nd.excluded = 0
        self.num_nodes += 1
        return self.num_nodes - 1

    cdef int32_t _new_edges(self, int count) except -1:
        cdef Edge* e
        while self.num_edges + count > self.edge_cap:
            self.edge_cap *= 2
            e = <Edge*> realloc(self.edges, self.edge_cap * sizeof(Edge))
            if e == NULL:
                raise MemoryError()
            self.edges = e
        self.num_edges += count
        return self.num_edges - count

    def memory_bytes(self):
        """Bytes used by the nodes and edges in use."""
        return self.num_nodes * sizeof(Node) + self.num_edges * sizeof(Edge)

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
        cdef double cp, sqrt_n, fpu, q, u, score, best_score, visited_prior, parent_q
        cdef int32_t child, nn
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
                if e.n > 0:
                    visited_prior += e.prior
            parent_q = nd.wsum / nd.n if nd.n > 0 else 0.0
            fpu = parent_q - (self.fpu_reduction_root if node == 0 else self.fpu_reduction) * sqrt(visited_prior)
            best = -1
            best_score = -1e300
            for i in range(nd.num_edges):
                e = &self.edges[nd.first_edge + i]
                child = e.child
                if child >= 0 and self.nodes[child].excluded:
                    continue
                nn = e.n + e.vl
                if child >= 0 and self.nodes[child].mate != 0:
                    q = 2.0 if self.nodes[child].mate < 0 else -2.0
                elif nn == 0:
                    q = fpu
                else:
                    q = (e.w - e.vl) / nn
                u = cp * e.prior * sqrt_n / (1 + nn)
                score = q + u
                if score > best_score:
                    best_score = score
                    best = i
            if best < 0:
                self.path_len = depth
                return SEL_COLLISION
            best += nd.first_edge
            e = &self.edges[best]
            e.vl += 1
            self.path_edges[depth] = best
            if e.child < 0:
                if self.full:
                    e.vl -= 1
                    self.path_len = depth
                    return SEL_FULL
                child = self._new_node()  # may move the node array: nd is stale from here
                self.edges[best].child = child
            depth += 1
            node = e.child
            self.path_nodes[depth] = node

    cdef void _undo_virtual_loss(self):
        cdef int i
        for i in range(self.path_len):
            self.edges[self.path_edges[i]].vl -= 1

    cdef void _backup(self, double value, int remove_vl):
        """Back up ``value`` (side to move at the leaf) along the current path."""
        cdef int i
        cdef Edge* e
        cdef Node* nd = &self.nodes[self.path_nodes[self.path_len]]
        nd.n += 1
        nd.wsum += value
        for i in range(self.path_len - 1, -1, -1):
            value = -value
            e = &self.edges[self.path_edges[i]]
            e.n += 1
            e.w += value
            if remove_vl:
                e.vl -= 1
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

    cdef void _expand(self, int32_t node, int num, int32_t* codes, float* priors) except *:
        """Give ``node`` its edges, sorted by prior (highest first)."""
        cdef int32_t first = self._new_edges(num)
        cdef int i, j
        cdef Edge tmp
        cdef Edge* e
        for i in range(num):
            e = &self.edges[first + i]
            e.w = 0.0
            e.child = -1
            e.n = 0
            e.prior = priors[i]
            e.move = <uint16_t> codes[i]
            e.vl = 0
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

    # ----- Python-facing queries ------------------------------------------------------------

    def root_edges(self, int32_t node=0):
        """List of (move_code, visits, value_sum, prior, child_mate) for the edges of ``node``."""
        cdef Node* nd = &self.nodes[node]
        cdef Edge* e
        out = []
        for i in range(nd.num_edges):
            e = &self.edges[nd.first_edge + i]
            if e.child >= 0 and self.nodes[e.child].excluded:
                continue
            out.append((e.move, e.n, e.w, e.prior, self.nodes[e.child].mate if e.child >= 0 else 0))
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
        """(visits, value_sum, mate, state, num_edges) of ``node``."""
        cdef Node* nd = &self.nodes[node]
        return nd.n, nd.wsum, nd.mate, nd.state, nd.num_edges

    def best_child_move(self, int32_t node):
        """(move_code, child) of the most visited edge of ``node``, or (-1, -1)."""
        cdef Node* nd = &self.nodes[node]
        cdef int i, best = -1
        cdef int32_t best_n = 0
        for i in range(nd.num_edges):
            if self.edges[nd.first_edge + i].n > best_n:
                best_n = self.edges[nd.first_edge + i].n
                best = i
        if best < 0:
            return -1, -1
        return self.edges[nd.first_edge + best].move, self.edges[nd.first_edge + best].child

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
        self.full = False
        queue[0] = new_root
        self.nodes[0] = old_nodes[new_root]
        self.nodes[0].excluded = 0
        while head < self.num_nodes:
            src = queue[head]
            if old_nodes[src].num_edges > 0 and old_nodes[src].first_edge >= 0:
                first = self.num_edges
                memcpy(&self.edges[first], &old_edges[old_nodes[src].first_edge],
                       old_nodes[src].num_edges * sizeof(Edge))
                self.num_edges += old_nodes[src].num_edges
                self.nodes[head].first_edge = first
                for i in range(old_nodes[src].num_edges):
                    self.edges[first + i].vl = 0
                    if self.edges[first + i].child >= 0:
                        queue[self.num_nodes] = self.edges[first + i].child
                        self.nodes[self.num_nodes] = old_nodes[self.edges[first + i].child]
                        if self.nodes[self.num_nodes].state == PENDING:
                            self.nodes[self.num_nodes].state = UNEXPANDED
                        self.edges[first + i].child = self.num_nodes
                        self.num_nodes += 1
            head += 1
        free(queue)
        free(old_nodes)
        free(old_edges)
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


cdef class BatchRunner:
    """Gathers batches of leaves from a :class:`Tree` and applies network results to them.

    ``gather`` selects playouts (virtual loss on their paths), rebuilds each leaf position from the
    root position in C, resolves terminal and cached leaves at once and returns the rest as encoded
    bitboards for one evaluator call; ``apply`` expands and backs up those leaves.
    """

    cdef public Tree tree
    cdef az_pos root
    cdef public object cache          # dict: position key -> (value, codes int32 array, priors float32 array)
    cdef public int cache_size
    cdef public int64_t playouts, sum_depth
    cdef public int max_depth_seen
    cdef public int collisions, cache_hits, terminal_hits
    cdef public object tablebases     # search.tablebase.Tablebases or None
    cdef public int tb_pieces         # probe positions with at most this many pieces (0: no tablebases)
    cdef public object tb_cache       # dict: position key -> WDL value (1, 0, -1) or None (no table)
    cdef public int64_t tb_hits

    def __init__(self, Tree tree, board, int cache_size):
        self.tree = tree
        self.root = _position_of(board)
        self.cache = {}
        self.cache_size = cache_size
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

    def gather(self, Batch batch, int want, int max_depth, int max_collisions, int max_playouts=-1):
        """Select up to ``want`` leaves that need the network.

        Returns ``(count, bitboards, black)``: the pending leaves' 16 bitboards each (uint64
        ``(count, 16)``) and whether black is to move there. Terminal and cached leaves met on the
        way are backed up at once and counted in ``playouts``. ``max_playouts`` >= 0 caps the
        pending leaves plus those resolved at once (a ``nodes`` limit is then met exactly).
        """
        cdef Tree t = self.tree
        cdef int count = 0, attempts = 0, outcome, depth, i, n
        cdef int32_t leaf
        cdef Node* nd
        cdef az_pos pos
        cdef uint16_t moves[MAX_MOVES]
        cdef object entry
        cdef uint64_t ukey
        cdef int code, promotion
        cdef bint black
        cdef double value
        cdef int32_t[::1] codes_view
        cdef float[::1] priors_view
        cdef int collisions = 0
        cdef int64_t start_playouts = self.playouts
        if want > batch.cap:
            want = batch.cap
        while count < want and attempts < 2 * want + 8:
            if max_playouts >= 0 and count + (self.playouts - start_playouts) >= max_playouts:
                break
            attempts += 1
            outcome = t._select(max_depth)
            depth = t.path_len
            if outcome == SEL_COLLISION or outcome == SEL_FULL:
                t._undo_virtual_loss()
                self.collisions += 1
                collisions += 1
                if outcome == SEL_FULL or collisions >= max_collisions:
                    break
                continue
            leaf = t.path_nodes[depth]
            if outcome == SEL_TERMINAL:
                nd = &t.nodes[leaf]
                # mated, else the value it was found terminal with (draw 0, or a tablebase result)
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
                entry = self._tablebase_value(&pos, ukey)
                if entry is not None:
                    value = entry
                    self.tb_hits += 1
            if value <= 1.0:
                t.nodes[leaf].state = TERMINAL
                t._backup(value, 1)
                self.terminal_hits += 1
                self._count_playout(depth)
                continue
            if self.cache_size > 0:
                entry = self.cache.get(<int64_t> ukey)
                if entry is not None:
                    codes_view = entry[1]
                    priors_view = entry[2]
                    t._expand(leaf, codes_view.shape[0], &codes_view[0], &priors_view[0])
                    t._backup(entry[0], 1)
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
        ``tree.policy_temperature``; they are cached at the temperature in effect.
        """
        cdef Tree t = self.tree
        cdef int slot, i, n
        cdef int32_t leaf
        cdef double mx, total, x
        cdef double inv_temp = 1.0 / t.policy_temperature if t.policy_temperature > 0 else 1.0
        cdef cnp.ndarray[cnp.float32_t, ndim=1] priors
        cdef cnp.ndarray[cnp.int32_t, ndim=1] codes
        for slot in range(batch.count):
            batch.load_path(slot, t)
            leaf = t.path_nodes[t.path_len]
            n = batch.num[slot]
            priors = np.empty(n, dtype=np.float32)
            codes = np.empty(n, dtype=np.int32)
            mx = -1e30
            for i in range(n):
                x = logits[slot, batch.index[slot, i]] - batch.penalty[slot, i]
                priors[i] = <float> x
                codes[i] = batch.codes[slot, i]
                if x > mx:
                    mx = x
            total = 0.0
            for i in range(n):
                x = exp((priors[i] - mx) * inv_temp)
                priors[i] = <float> x
                total += x
            for i in range(n):
                priors[i] = <float> (priors[i] / total)
            t._expand(leaf, n, <int32_t*> codes.data, <float*> priors.data)
            t._backup(values[slot], 1)
            self._count_playout(t.path_len)
            if self.cache_size > 0:
                if len(self.cache) >= self.cache_size:
                    del self.cache[next(iter(self.cache))]
                self.cache[<int64_t> batch.key[slot]] = (float(values[slot]), codes, priors)
        batch.count = 0
        if t.memory_bytes() >= t.max_bytes:
            t.full = True

    def cancel(self, Batch batch):
        """Forget the batch's pending leaves (a search stopped before their evaluation came back)."""
        cdef Tree t = self.tree
        cdef int slot
        for slot in range(batch.count):
            batch.load_path(slot, t)
            t._undo_virtual_loss()
            t.nodes[t.path_nodes[t.path_len]].state = UNEXPANDED
        batch.count = 0
