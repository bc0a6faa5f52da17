/* Chess rules in C for the tree search: positions, legal moves, make-move, keys and input bitboards.
 *
 * Squares are numbered a1 = 0 ... h8 = 63 as in python-chess. A move is packed into 15 bits:
 * from | to << 6 | promotion << 12, with python-chess piece types for the promotion (2 knight,
 * 3 bishop, 4 rook, 5 queen) and 0 otherwise. Castling rights are the squares of the rooks that may
 * still castle (python-chess's ``clean_castling_rights``): the corners in standard chess, any back-rank
 * square in Chess960. A castling move is the king's two-square move (e1g1) in standard chess and the king
 * taking its own rook (e1h1, b1a1) in Chess960, as python-chess writes them.
 */
#ifndef AZ_MOVEGEN_H
#define AZ_MOVEGEN_H

#include <stdint.h>

#define AZ_MAX_MOVES 256

enum { AZ_PAWN = 0, AZ_KNIGHT, AZ_BISHOP, AZ_ROOK, AZ_QUEEN, AZ_KING };
enum { AZ_WHITE = 0, AZ_BLACK = 1 };

typedef struct {
    uint64_t pieces[6];     /* by piece type, both colours */
    uint64_t color[2];      /* by colour */
    uint64_t castling;      /* squares of the rooks that may still castle */
    int32_t ep;             /* square a pawn just passed over with a double step, or -1 */
    int32_t turn;           /* AZ_WHITE or AZ_BLACK */
    int32_t halfmove;       /* plies since the last capture or pawn move */
    int32_t chess960;       /* 1: Chess960 castling rules and king-takes-rook castling moves */
} az_pos;

/* Fill the attack tables; call once before anything else. */
void az_init(void);

/* Legal moves of ``pos`` into ``out`` (room for AZ_MAX_MOVES); returns how many. */
int az_legal_moves(const az_pos *pos, uint16_t *out);

/* Play ``move`` (assumed legal) on ``pos`` in place. */
void az_make_move(az_pos *pos, uint16_t move);

/* Whether the side to move is in check. */
int az_in_check(const az_pos *pos);

/* Neither side can ever mate (python-chess's ``is_insufficient_material``). */
int az_insufficient_material(const az_pos *pos);

/* Key for transpositions and repetitions: the fields of python-chess's transposition key (pieces,
 * colours, side to move, castling rights, and the e.p. square only when an e.p. capture is legal)
 * mixed into 64 bits. Chess960 positions with castling rights get other keys than standard ones with the
 * same rights (their castling moves are written differently). */
uint64_t az_key(const az_pos *pos);

/* The 16 input bitboards of ``pos`` before the black-to-move flip, as engine.encoding lays them out:
 * P p R r B b N n Q q K k of (side to move, opponent), then all-ones boards for our O-O, their O-O,
 * our O-O-O, their O-O-O (in Chess960: a right with the rook on the h-side / a-side of the king). */
void az_bitboards(const az_pos *pos, uint64_t *out16);

#endif
