# Part of the _mcts extension (included by _mcts.pyx): the NN cache (a fixed table) and the legal-move softmax.

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

    cdef void store(self, uint64_t key, float value, float draw, int num, const double* logits, double best):
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
        entry.draw = draw
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
