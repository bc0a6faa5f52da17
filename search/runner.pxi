# Part of the _mcts extension (included by _mcts.pyx): batches of leaves, gathered from the tree and evaluated.

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
    cdef uint64_t[:, ::1] lc0_rows   # lc0 input: 112 bitboards each, already from the side to move
    cdef float[::1] rule50

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
        self.lc0_rows = np.zeros((cap, LC0_NUM_PLANES), dtype=np.uint64)
        self.rule50 = np.zeros(cap, dtype=np.float32)

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
    cdef public NNCache cache
    cdef public int64_t playouts, sum_depth
    cdef public int max_depth_seen
    cdef public int collisions, cache_hits, terminal_hits
    cdef public object tablebases     # search.tablebase.Tablebases or None
    cdef public int tb_pieces         # probe positions with at most this many pieces (0: no tablebases)
    cdef public object tb_cache       # dict: position key -> WDL value (1, 0, -1) or None (no table)
    cdef public int64_t tb_hits
    cdef public bint lc0_input        # leaves go out as lc0's 112 planes with lc0 policy indices
    cdef Lc0Slot lc0_before[LC0_HISTORY]  # lc0 input: the game's positions from the root back

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
        self.lc0_input = False
        _set_lc0_slots(self.lc0_before, [])
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

    def set_lc0_history(self, slots):
        """lc0 input: the root's 8 history slots, ``engine.nets.lc0.encoding.history_slots`` of the root
        board (slot 0 the root; (board, repeated) or None)."""
        _set_lc0_slots(self.lc0_before, slots)

    def lc0_rows_after(self, codes):
        """lc0 input of the position reached from the root by the packed moves ``codes`` as the gatherer
        builds it (for the tests): (112 uint64 bitboards from the side to move, rule-50 count, cache key)."""
        cdef int depth = len(codes), i
        cdef az_pos ring[LC0_HISTORY]
        cdef uint64_t ring_keys[LC0_HISTORY]
        cdef uint64_t rows[LC0_NUM_PLANES]
        if depth >= MAX_DEPTH:
            raise ValueError(f"at most {MAX_DEPTH - 1} moves")
        ring[0] = self.root
        ring_keys[0] = az_key(&self.root)
        for i in range(depth):
            ring[(i + 1) & 7] = ring[i & 7]
            az_make_move(&ring[(i + 1) & 7], <uint16_t> codes[i])
            ring_keys[(i + 1) & 7] = az_key(&ring[(i + 1) & 7])
        key = lc0_rows(ring, ring_keys, depth, self.lc0_before, rows)
        return np.array([rows[i] for i in range(LC0_NUM_PLANES)], dtype=np.uint64), ring[depth & 7].halfmove, key

    def lc0_policy_index(self, codes, int code):
        """lc0's policy index the gatherer gives move ``code`` after the packed moves ``codes`` (tests)."""
        cdef az_pos pos = self.root
        for c in codes:
            az_make_move(&pos, <uint16_t> c)
        return lc0_policy_index(&pos, code)

    cdef void _count_playout(self, int depth):
        self.playouts += 1
        self.sum_depth += depth
        if depth > self.max_depth_seen:
            self.max_depth_seen = depth

    def gather(self, Batch batch, int want, int max_collisions, int max_playouts=-1):
        """Select up to ``want`` leaves that need the network.

        Returns ``(count, bitboards, black)``: the pending leaves' 16 bitboards each (uint64
        ``(count, 16)``) and whether black is to move there; with ``lc0_input`` ``(count, bitboards,
        rule50)``: lc0's 112 bitboards each (uint64 ``(count, 112)``, already seen from the side to move)
        and the rule-50 counts (float32 ``(count,)``). Terminal and cached leaves met on the
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
        cdef bint lc0 = self.lc0_input
        cdef az_pos ring[LC0_HISTORY]
        cdef uint64_t ring_keys[LC0_HISTORY]
        cdef uint64_t cache_key
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
                t._backup(value, nd.dsum / nd.n if nd.n > 0 else (1.0 if value == 0.0 else 0.0), 1)
                self.terminal_hits += 1
                self._count_playout(depth)
                continue
            # rebuild the leaf position
            pos = self.root
            if lc0:
                ring[0] = pos
            for i in range(depth):
                az_make_move(&pos, t.edges[t.path_edges[i]].move)
                if lc0:
                    ring[(i + 1) & 7] = pos
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
                t._backup(value, 1.0 if value == 0.0 else 0.0, 1)  # a drawn terminal is a certain draw
                self.terminal_hits += 1
                self._count_playout(depth)
                continue
            cache_key = ukey
            if lc0:  # the cache key covers the whole input: history, repetitions, rule 50
                for i in range(depth - 7 if depth > 8 else 1, depth + 1):
                    ring_keys[i & 7] = t.nodes[t.path_nodes[i]].key
                cache_key = lc0_rows(ring, ring_keys, depth, self.lc0_before, &batch.lc0_rows[count, 0])
                batch.rule50[count] = pos.halfmove
            entry = self.cache.find(cache_key, n)
            if entry != NULL:
                for i in range(n):
                    codes[i] = moves[i]
                    relative[i] = -entry.logit[i] / LOGIT_SCALE
                _softmax(relative, n, inv_temp, priors)
                t._expand(leaf, n, codes, priors)
                t._backup(entry.value, entry.draw, 1)
                self.cache_hits += 1
                self._count_playout(depth)
                continue
            black = pos.turn == AZ_BLACK
            batch.save_path(count, t)
            batch.num[count] = n
            batch.key[count] = cache_key
            if lc0:  # every move has its own logit, underpromotions too
                for i in range(n):
                    batch.codes[count, i] = moves[i]
                    batch.index[count, i] = lc0_policy_index(&pos, moves[i])
                    batch.penalty[count, i] = 0.0
            else:
                az_bitboards(&pos, &batch.rows[count, 0])
                batch.black[count] = black
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
        if lc0:
            return count, np.array(batch.lc0_rows[:count], dtype=np.uint64), np.array(batch.rule50[:count])
        return (count, np.array(batch.rows[:count], dtype=np.uint64),
                np.array(batch.black[:count], dtype=bool))

    def apply(self, Batch batch, float[:, ::1] logits, float[::1] values, float[::1] draws=None):
        """Expand the batch's pending leaves with the network's logits and values (and, from a WDL network,
        draw probabilities); back them up.

        A leaf's priors are the softmax over its legal moves of (logit - underpromotion penalty) /
        ``tree.policy_temperature``. The logits go to the cache, which keeps them apart from the
        temperature. A leaf the full tree cannot expand keeps only its value (it stays unexpanded).
        """
        cdef Tree t = self.tree
        cdef int slot, i, n
        cdef int32_t leaf
        cdef double mx, x
        cdef float draw
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
            draw = draws[slot] if draws is not None else 0.0
            t._backup(values[slot], draw, 1)
            self._count_playout(t.path_len)
            self.cache.store(batch.key[slot], values[slot], draw, n, raw, mx)
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
