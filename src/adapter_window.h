/*
 * adapter_window.h - sliding windows of recent events and the statistics the online adapter reads
 * (internal). See adapter_window.c for the algorithm.
 *
 * A global window holds the last `capacity` events (and, with max_age > 0, only events no
 * older than max_age time units than the newest). Per item it keeps: the count in the window,
 * the count in the recent half (the last capacity/2 pushes), and the co-click sum: the sum of
 * the base latents z_j of the items co-consumed with i inside the window by the same user
 * (each event is paired with that user's up-to-R previous events still in the window).
 * Per user it keeps a ring of the R most recent items (independent of the window), the time
 * of the last event and the event count.
 *
 * Item statistics s_i (DR_WIN_ITEM_STATS(d) floats):
 *   [0] log1p(count in window)
 *   [1] trend = (recent - older) / (count + 1)        in (-1, 1)
 *   [2] log1p(co-click pairs)
 *   [3 .. 3+d) co-click mean = co-sum / max(pairs, 1)
 * User statistics r_u (DR_WIN_USER_STATS(d) floats), at query time `now`:
 *   [0] log1p(hours since the user's last event)   (0 for a user with no event)
 *   [1] log1p(events of the user so far)
 *   [2 .. 2+d) mean base latent of the user's ring (last R items), zeros when empty
 */
#ifndef DR_ADAPTER_WINDOW_H
#define DR_ADAPTER_WINDOW_H

#include "common.h"
#include "ckpt.h"

#define DR_WIN_ITEM_STATS(d) ((d) + 3u)
#define DR_WIN_USER_STATS(d) ((d) + 2u)
#define DR_WIN_NONE UINT64_MAX

typedef struct dr_window_params {
    uint32_t capacity;     /* W: events kept (>= 2) */
    uint32_t user_ring;    /* R: per-user recent items, also the co-click reach (>= 1) */
    int64_t max_age;       /* > 0: events older than newest - max_age leave too (time units) */
    double seconds_per_unit; /* time unit of the events (for the hours feature); 0 = 1 */
} dr_window_params;

dr_window_params dr__window_default_params(void); /* W 4096, R 8, no max age, seconds */

typedef struct dr_window dr_window;

/* z: (n_items, d) base latents, borrowed (must outlive w and not change). */
dr_status dr__window_create(const dr_window_params *p, uint32_t n_users, uint32_t n_items,
                           uint32_t d, const float *z, dr_window **out, dr_error *err);
void dr__window_free(dr_window *w);

/*
 * Adds event (u, i, t) (t must not decrease; DR_ARG otherwise) and evicts what leaves.
 * *changed / *n_changed list the distinct items whose statistics changed (valid until the
 * next push). Never allocates.
 */
dr_status dr__window_push(dr_window *w, uint32_t u, uint32_t i, int64_t t,
                         const uint32_t **changed, size_t *n_changed, dr_error *err);

/*
 * Item i's base latent changes to znew (d) (the borrowed z row still holds the old value; the
 * caller copies znew into it afterwards): every co-click pair in the window that involves i
 * moves its partner's co-sum by znew - zold, as if the pair had been made with znew. The
 * partners are listed in *changed (valid until the next push or rebase). Never allocates.
 */
void dr__window_rebase_item(dr_window *w, uint32_t i, const float *znew, const uint32_t **changed,
                           size_t *n_changed);

/* s: (DR_WIN_ITEM_STATS(d)). */
void dr__window_item_stats(const dr_window *w, uint32_t i, float *s);
/* r: (DR_WIN_USER_STATS(d)); now in time units. */
void dr__window_user_stats(const dr_window *w, uint32_t u, int64_t now, float *r);
/* The user's ring, oldest first: returns the count (<= R), fills items (R). */
uint32_t dr__window_user_ring(const dr_window *w, uint32_t u, uint32_t *items);

/* Events of user u so far and the time of the last one (0 when none). */
uint64_t dr__window_user_info(const dr_window *w, uint32_t u, int64_t *last_t);
/* Events of item i in the window now. */
uint32_t dr__window_item_count(const dr_window *w, uint32_t i);
/* Time of the newest event pushed (0 before the first push). */
int64_t dr__window_last_time(const dr_window *w);
size_t dr__window_size(const dr_window *w);            /* events in the window now */
uint64_t dr__window_pushed(const dr_window *w);        /* events pushed so far */
/* Item of a uniformly drawn window event (r in [0, 1)); UINT32_MAX when empty. */
uint32_t dr__window_sample_item(const dr_window *w, double r);

/* Slow twin: item statistics of every item (n_items, DR_WIN_ITEM_STATS(d)) recomputed from
 * scratch from the window's event list alone (no incremental state). Allocates. */
dr_status dr__window_item_stats_slow(const dr_window *w, float *out, dr_error *err);

/* State: adds sections named prefix+"..." to wr (data referenced: keep w alive and unchanged
 * until dr__ckpt_write); load checks shapes against w's parameters and overwrites w's state. */
dr_status dr__window_save(const dr_window *w, dr_ckpt_writer *wr, const char *prefix,
                         dr_error *err);
dr_status dr__window_load(dr_window *w, const dr_ckpt *c, const char *prefix, dr_error *err);

#endif /* DR_ADAPTER_WINDOW_H */
