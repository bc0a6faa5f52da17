# Part of the _mcts extension (included by _mcts.pyx): the tree (nodes, edges, PUCT selection, backup).

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

    def at_limit(self):
        """Whether the budget holds no more nodes or edges: the tree stops growing and only refines."""
        return self.full or self.nodes_full()

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
        nd.dsum = 0.0
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

    cdef void _backup(self, double value, float draw, int remove_vl):
        """Back up ``value`` (side to move at the leaf) and the draw probability ``draw`` (the same for both
        sides) along the current path."""
        cdef int i
        cdef Node* nd = &self.nodes[self.path_nodes[self.path_len]]
        nd.n += 1
        nd.wsum += value
        nd.dsum += draw
        for i in range(self.path_len - 1, -1, -1):
            value = -value
            if remove_vl:
                self.nodes[self.path_nodes[i + 1]].vl -= 1
            nd = &self.nodes[self.path_nodes[i]]
            nd.n += 1
            nd.wsum += value
            nd.dsum += draw
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
                                     self.nodes[e.child].mate, self.nodes[e.child].dsum))
            else:
                out.append(EdgeStats(e.move, 0, 0.0, e.prior, 0, 0.0))
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
        return NodeStats(nd.n, nd.wsum, nd.mate, nd.state, nd.num_edges, nd.dsum)

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
