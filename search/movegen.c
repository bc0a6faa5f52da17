/* Chess rules in C for the tree search; see movegen.h.
 *
 * Sliding attacks walk precomputed rays and stop at the first blocker (found with a bit scan), so no
 * large magic tables are needed. Moves are generated pseudo-legally and kept when the mover's king is
 * not attacked after playing them on a copy of the position (a position is 80 bytes).
 */
#include "movegen.h"

#include <string.h>

#define BB(sq) (1ULL << (sq))
#define A1 0
#define C1 2
#define D1 3
#define E1 4
#define F1 5
#define G1 6
#define H1 7
#define A8 56
#define C8 58
#define D8 59
#define E8 60
#define F8 61
#define G8 62
#define H8 63
#define RANK_1 0x00000000000000FFULL
#define RANK_3 0x0000000000FF0000ULL
#define RANK_6 0x0000FF0000000000ULL
#define RANK_8 0xFF00000000000000ULL
#define LIGHT_SQUARES 0x55AA55AA55AA55AAULL
#define DARK_SQUARES 0xAA55AA55AA55AA55ULL

/* Ray directions: the first four go to higher squares (first blocker = lowest set bit). */
enum { NORTH, EAST, NORTH_EAST, NORTH_WEST, SOUTH, WEST, SOUTH_WEST, SOUTH_EAST };
static const int DIR_FILE[8] = {0, 1, 1, -1, 0, -1, -1, 1};
static const int DIR_RANK[8] = {1, 0, 1, 1, -1, 0, -1, -1};

static uint64_t RAYS[8][64];
static uint64_t KNIGHT_ATTACKS[64];
static uint64_t KING_ATTACKS[64];
static uint64_t PAWN_ATTACKS[2][64]; /* squares a pawn of that colour on the square attacks */

static inline int lsb(uint64_t b) { return __builtin_ctzll(b); }
static inline int msb(uint64_t b) { return 63 - __builtin_clzll(b); }
static inline int popcount(uint64_t b) { return __builtin_popcountll(b); }

static uint64_t steps(int sq, const int (*deltas)[2], int count) {
    uint64_t out = 0;
    int f = sq & 7, r = sq >> 3;
    for (int i = 0; i < count; i++) {
        int nf = f + deltas[i][0], nr = r + deltas[i][1];
        if (nf >= 0 && nf < 8 && nr >= 0 && nr < 8) out |= BB(nr * 8 + nf);
    }
    return out;
}

void az_init(void) {
    static const int knight[8][2] = {{1, 2}, {2, 1}, {2, -1}, {1, -2}, {-1, 2}, {-2, 1}, {-2, -1}, {-1, -2}};
    static const int king[8][2] = {{1, 0}, {1, 1}, {0, 1}, {-1, 1}, {-1, 0}, {-1, -1}, {0, -1}, {1, -1}};
    static const int white_pawn[2][2] = {{-1, 1}, {1, 1}};
    static const int black_pawn[2][2] = {{-1, -1}, {1, -1}};
    for (int sq = 0; sq < 64; sq++) {
        KNIGHT_ATTACKS[sq] = steps(sq, knight, 8);
        KING_ATTACKS[sq] = steps(sq, king, 8);
        PAWN_ATTACKS[AZ_WHITE][sq] = steps(sq, white_pawn, 2);
        PAWN_ATTACKS[AZ_BLACK][sq] = steps(sq, black_pawn, 2);
        for (int d = 0; d < 8; d++) {
            uint64_t ray = 0;
            int f = (sq & 7) + DIR_FILE[d], r = (sq >> 3) + DIR_RANK[d];
            while (f >= 0 && f < 8 && r >= 0 && r < 8) {
                ray |= BB(r * 8 + f);
                f += DIR_FILE[d];
                r += DIR_RANK[d];
            }
            RAYS[d][sq] = ray;
        }
    }
}

static inline uint64_t ray_attacks(int dir, int sq, uint64_t occupied) {
    uint64_t attacks = RAYS[dir][sq];
    uint64_t blockers = attacks & occupied;
    if (blockers) attacks ^= RAYS[dir][dir < SOUTH ? lsb(blockers) : msb(blockers)];
    return attacks;
}

static inline uint64_t bishop_attacks(int sq, uint64_t occupied) {
    return ray_attacks(NORTH_EAST, sq, occupied) | ray_attacks(NORTH_WEST, sq, occupied)
         | ray_attacks(SOUTH_EAST, sq, occupied) | ray_attacks(SOUTH_WEST, sq, occupied);
}

static inline uint64_t rook_attacks(int sq, uint64_t occupied) {
    return ray_attacks(NORTH, sq, occupied) | ray_attacks(SOUTH, sq, occupied)
         | ray_attacks(EAST, sq, occupied) | ray_attacks(WEST, sq, occupied);
}

/* Whether ``by`` attacks ``sq`` with ``occupied`` as the board's occupancy. */
static int attacked(const az_pos *p, int sq, int by, uint64_t occupied) {
    uint64_t them = p->color[by];
    if (PAWN_ATTACKS[by ^ 1][sq] & p->pieces[AZ_PAWN] & them) return 1;
    if (KNIGHT_ATTACKS[sq] & p->pieces[AZ_KNIGHT] & them) return 1;
    if (KING_ATTACKS[sq] & p->pieces[AZ_KING] & them) return 1;
    uint64_t diagonal = (p->pieces[AZ_BISHOP] | p->pieces[AZ_QUEEN]) & them;
    if (diagonal && (bishop_attacks(sq, occupied) & diagonal)) return 1;
    uint64_t straight = (p->pieces[AZ_ROOK] | p->pieces[AZ_QUEEN]) & them;
    if (straight && (rook_attacks(sq, occupied) & straight)) return 1;
    return 0;
}

int az_in_check(const az_pos *p) {
    uint64_t king = p->pieces[AZ_KING] & p->color[p->turn];
    if (!king) return 0;
    return attacked(p, lsb(king), p->turn ^ 1, p->color[0] | p->color[1]);
}

static inline int piece_on(const az_pos *p, int sq) {
    uint64_t b = BB(sq);
    for (int t = 0; t < 6; t++)
        if (p->pieces[t] & b) return t;
    return -1;
}

/* Chess960 castling, the king taking its own rook on ``rook``: king to the c- or g-file, rook to d or f. */
static void castle_960(az_pos *p, int king, int rook) {
    int us = p->turn, base = king & 56, a_side = rook < king;
    uint64_t king_to = BB(base + (a_side ? 2 : 6)), rook_to = BB(base + (a_side ? 3 : 5));
    p->pieces[AZ_KING] = (p->pieces[AZ_KING] & ~BB(king)) | king_to;
    p->pieces[AZ_ROOK] = (p->pieces[AZ_ROOK] & ~BB(rook)) | rook_to;
    p->color[us] = (p->color[us] & ~(BB(king) | BB(rook))) | king_to | rook_to;
    p->castling &= us == AZ_WHITE ? ~RANK_1 : ~RANK_8;
    p->halfmove += 1;
    p->ep = -1;
    p->turn = us ^ 1;
}

void az_make_move(az_pos *p, uint16_t move) {
    int from = move & 63, to = (move >> 6) & 63, promotion = (move >> 12) & 7;
    int us = p->turn, them = us ^ 1;
    uint64_t from_bb = BB(from), to_bb = BB(to);
    int piece = piece_on(p, from);
    if (piece == AZ_KING && (p->color[us] & to_bb)) {
        castle_960(p, from, to);
        return;
    }
    int captured = (p->color[them] & to_bb) ? piece_on(p, to) : -1;

    p->halfmove += 1;
    if (captured >= 0) {
        p->pieces[captured] &= ~to_bb;
        p->color[them] &= ~to_bb;
        p->halfmove = 0;
    }
    p->pieces[piece] &= ~from_bb;
    p->color[us] = (p->color[us] & ~from_bb) | to_bb;
    p->pieces[promotion ? promotion - 1 : piece] |= to_bb;

    if (piece == AZ_PAWN) {
        p->halfmove = 0;
        if (to == p->ep && captured < 0 && ((from ^ to) & 7)) { /* en passant: the pawn beside us goes */
            uint64_t victim = BB(us == AZ_WHITE ? to - 8 : to + 8);
            p->pieces[AZ_PAWN] &= ~victim;
            p->color[them] &= ~victim;
        }
    } else if (piece == AZ_KING) {
        p->castling &= us == AZ_WHITE ? ~RANK_1 : ~RANK_8;
        if (to - from == 2 || from - to == 2) { /* castling: the rook jumps over the king */
            int rook_from = to > from ? to + 1 : to - 2, rook_to = to > from ? to - 1 : to + 1;
            uint64_t rook_move = BB(rook_from) | BB(rook_to);
            p->pieces[AZ_ROOK] ^= rook_move;
            p->color[us] ^= rook_move;
        }
    }
    p->castling &= ~(from_bb | to_bb);
    p->ep = (piece == AZ_PAWN && (to - from == 16 || from - to == 16)) ? (from + to) / 2 : -1;
    p->turn = them;
}

/* Adds ``move`` to ``out`` when it leaves the mover's king safe (a side without a king has no check). */
static inline int keep_if_legal(const az_pos *p, uint16_t move, uint16_t *out, int n) {
    az_pos next = *p;
    az_make_move(&next, move);
    uint64_t king = next.pieces[AZ_KING] & next.color[p->turn];
    if (!king || !attacked(&next, lsb(king), next.turn, next.color[0] | next.color[1])) out[n++] = move;
    return n;
}

static inline int add_targets(const az_pos *p, int from, uint64_t targets, uint16_t *out, int n) {
    while (targets) {
        int to = lsb(targets);
        targets &= targets - 1;
        n = keep_if_legal(p, (uint16_t)(from | (to << 6)), out, n);
    }
    return n;
}

static inline int add_pawn_move(const az_pos *p, int from, int to, uint16_t *out, int n) {
    uint16_t move = (uint16_t)(from | (to << 6));
    if (BB(to) & (RANK_1 | RANK_8)) { /* python-chess's order: queen, rook, bishop, knight */
        for (int promotion = 5; promotion >= 2; promotion--) n = keep_if_legal(p, move | (promotion << 12), out, n);
        return n;
    }
    return keep_if_legal(p, move, out, n);
}

static int castling_moves(const az_pos *p, uint64_t occupied, uint16_t *out, int n) {
    int us = p->turn, them = us ^ 1;
    int king = us == AZ_WHITE ? E1 : E8;
    uint64_t short_rook = us == AZ_WHITE ? BB(H1) : BB(H8), long_rook = us == AZ_WHITE ? BB(A1) : BB(A8);
    if (!(p->castling & (short_rook | long_rook)) || attacked(p, king, them, occupied)) return n;
    if ((p->castling & short_rook) && !(occupied & (BB(king + 1) | BB(king + 2)))
        && !attacked(p, king + 1, them, occupied))
        n = keep_if_legal(p, (uint16_t)(king | ((king + 2) << 6)), out, n);
    if ((p->castling & long_rook) && !(occupied & (BB(king - 1) | BB(king - 2) | BB(king - 3)))
        && !attacked(p, king - 1, them, occupied))
        n = keep_if_legal(p, (uint16_t)(king | ((king - 2) << 6)), out, n);
    return n;
}

/* Squares strictly between ``a`` and ``b`` on one rank. */
static inline uint64_t between_on_rank(int a, int b) {
    int low = a < b ? a : b, high = a < b ? b : a;
    return (BB(high) - 1) & ~((BB(low) << 1) - 1);
}

/* Chess960 castling (also right for standard positions): every square the king and the rook cross or land
 * on is empty but for the two of them; the king is not attacked on its square or any it crosses (with the
 * king gone from its square), nor on its destination once the rook has moved (keep_if_legal plays the move,
 * so a rook that shielded the king's destination along the rank counts). */
static int castling_moves_960(const az_pos *p, uint64_t occupied, uint16_t *out, int n) {
    int us = p->turn, them = us ^ 1;
    uint64_t back = us == AZ_WHITE ? RANK_1 : RANK_8;
    uint64_t king_bb = p->pieces[AZ_KING] & p->color[us] & back, rights = p->castling & back;
    if (!king_bb || !rights) return n;
    int king = lsb(king_bb), base = king & 56;
    uint64_t without_king = occupied ^ king_bb;
    if (attacked(p, king, them, without_king)) return n;
    for (; rights; rights &= rights - 1) {
        int rook = lsb(rights), a_side = rook < king;
        int king_to = base + (a_side ? 2 : 6), rook_to = base + (a_side ? 3 : 5);
        uint64_t king_path = between_on_rank(king, king_to);
        uint64_t crossed = king_path | between_on_rank(rook, rook_to) | BB(king_to) | BB(rook_to);
        if ((without_king ^ BB(rook)) & crossed) continue;
        int safe = 1;
        for (uint64_t b = king_path; b && safe; b &= b - 1) safe = !attacked(p, lsb(b), them, without_king);
        if (safe) n = keep_if_legal(p, (uint16_t)(king | (rook << 6)), out, n);
    }
    return n;
}

int az_legal_moves(const az_pos *p, uint16_t *out) {
    int us = p->turn, n = 0;
    uint64_t own = p->color[us], enemy = p->color[us ^ 1], occupied = own | enemy, empty = ~occupied;
    uint64_t b;

    /* pawns */
    uint64_t pawns = p->pieces[AZ_PAWN] & own;
    int forward = us == AZ_WHITE ? 8 : -8;
    uint64_t single = us == AZ_WHITE ? (pawns << 8) & empty : (pawns >> 8) & empty;
    uint64_t twice = us == AZ_WHITE ? ((single & RANK_3) << 8) & empty : ((single & RANK_6) >> 8) & empty;
    for (b = single; b; b &= b - 1) n = add_pawn_move(p, lsb(b) - forward, lsb(b), out, n);
    for (b = twice; b; b &= b - 1) n = keep_if_legal(p, (uint16_t)((lsb(b) - 2 * forward) | (lsb(b) << 6)), out, n);
    uint64_t capturable = enemy | (p->ep >= 0 ? BB(p->ep) : 0);
    for (b = pawns; b; b &= b - 1) {
        int from = lsb(b);
        for (uint64_t t = PAWN_ATTACKS[us][from] & capturable; t; t &= t - 1) n = add_pawn_move(p, from, lsb(t), out, n);
    }
    /* pieces */
    for (b = p->pieces[AZ_KNIGHT] & own; b; b &= b - 1)
        n = add_targets(p, lsb(b), KNIGHT_ATTACKS[lsb(b)] & ~own, out, n);
    for (b = (p->pieces[AZ_BISHOP] | p->pieces[AZ_QUEEN]) & own; b; b &= b - 1)
        n = add_targets(p, lsb(b), bishop_attacks(lsb(b), occupied) & ~own, out, n);
    for (b = (p->pieces[AZ_ROOK] | p->pieces[AZ_QUEEN]) & own; b; b &= b - 1)
        n = add_targets(p, lsb(b), rook_attacks(lsb(b), occupied) & ~own, out, n);
    for (b = p->pieces[AZ_KING] & own; b; b &= b - 1)
        n = add_targets(p, lsb(b), KING_ATTACKS[lsb(b)] & ~own, out, n);
    return p->chess960 ? castling_moves_960(p, occupied, out, n) : castling_moves(p, occupied, out, n);
}

/* Whether the side to move has a legal en passant capture (the e.p. square then counts in the key). */
static int has_legal_en_passant(const az_pos *p) {
    if (p->ep < 0) return 0;
    uint64_t capturers = PAWN_ATTACKS[p->turn ^ 1][p->ep] & p->pieces[AZ_PAWN] & p->color[p->turn];
    uint16_t scratch[1];
    for (; capturers; capturers &= capturers - 1)
        if (keep_if_legal(p, (uint16_t)(lsb(capturers) | (p->ep << 6)), scratch, 0)) return 1;
    return 0;
}

static inline uint64_t mix64(uint64_t x) { /* splitmix64's finaliser */
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ULL;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBULL;
    x ^= x >> 31;
    return x;
}

uint64_t az_key(const az_pos *p) {
    uint64_t fields[11] = {
        p->pieces[AZ_PAWN], p->pieces[AZ_KNIGHT], p->pieces[AZ_BISHOP], p->pieces[AZ_ROOK],
        p->pieces[AZ_QUEEN], p->pieces[AZ_KING], p->color[AZ_WHITE], p->color[AZ_BLACK],
        p->turn == AZ_WHITE, p->castling | (p->chess960 && p->castling ? BB(8) : 0), /* a2: never a right */
        has_legal_en_passant(p) ? (uint64_t)p->ep : 0xFFFFFFFFFFFFFFFFULL,
    };
    uint64_t h = 0x243F6A8885A308D3ULL;
    for (int i = 0; i < 11; i++) h = mix64(h ^ (fields[i] + 0x9E3779B97F4A7C15ULL * (uint64_t)(i + 1)));
    return h;
}

static int side_has_insufficient_material(const az_pos *p, int color) {
    uint64_t own = p->color[color], other = p->color[color ^ 1];
    if (own & (p->pieces[AZ_PAWN] | p->pieces[AZ_ROOK] | p->pieces[AZ_QUEEN])) return 0;
    if (own & p->pieces[AZ_KNIGHT])
        return popcount(own) <= 2 && !(other & ~p->pieces[AZ_KING] & ~p->pieces[AZ_QUEEN]);
    if (own & p->pieces[AZ_BISHOP]) {
        uint64_t bishops = p->pieces[AZ_BISHOP];
        int one_colour = !(bishops & DARK_SQUARES) || !(bishops & LIGHT_SQUARES);
        return one_colour && !p->pieces[AZ_PAWN] && !p->pieces[AZ_KNIGHT];
    }
    return 1;
}

int az_insufficient_material(const az_pos *p) {
    return side_has_insufficient_material(p, AZ_WHITE) && side_has_insufficient_material(p, AZ_BLACK);
}

void az_bitboards(const az_pos *p, uint64_t *out) {
    static const int order[6] = {AZ_PAWN, AZ_ROOK, AZ_BISHOP, AZ_KNIGHT, AZ_QUEEN, AZ_KING};
    uint64_t us = p->color[p->turn], them = p->color[p->turn ^ 1];
    for (int i = 0; i < 6; i++) {
        out[2 * i] = p->pieces[order[i]] & us;
        out[2 * i + 1] = p->pieces[order[i]] & them;
    }
    int white = p->turn == AZ_WHITE;
    uint64_t all = 0xFFFFFFFFFFFFFFFFULL;
    if (p->chess960) { /* h-side rights (O-O) and a-side rights (O-O-O), by the king's file */
        uint64_t h_side[2], a_side[2];
        for (int c = 0; c < 2; c++) {
            uint64_t back = c == AZ_WHITE ? RANK_1 : RANK_8, king = p->pieces[AZ_KING] & p->color[c] & back;
            uint64_t rights = king ? p->castling & back : 0;
            h_side[c] = rights & ~((king << 1) - 1);
            a_side[c] = rights & (king - 1);
        }
        out[12] = h_side[p->turn] ? all : 0;
        out[13] = h_side[p->turn ^ 1] ? all : 0;
        out[14] = a_side[p->turn] ? all : 0;
        out[15] = a_side[p->turn ^ 1] ? all : 0;
        return;
    }
    out[12] = (p->castling & (white ? BB(H1) : BB(H8))) ? all : 0;
    out[13] = (p->castling & (white ? BB(H8) : BB(H1))) ? all : 0;
    out[14] = (p->castling & (white ? BB(A1) : BB(A8))) ? all : 0;
    out[15] = (p->castling & (white ? BB(A8) : BB(A1))) ? all : 0;
}
