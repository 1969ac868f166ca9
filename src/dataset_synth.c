/*
 * dataset_synth.c - the synthetic dataset generator (dr_synth_generate) and its ground truth.
 *
 * DESIGN: a small generative world with known structure, so that every part of the engine has
 * something real to find and the tests can check that it was found (the full story, with its
 * constants, is docs/SYNTH.md):
 *   genres  G unit directions c_g in R^D; item k < G gets genre k, so every genre exists from
 *           the start.
 *   items   a dominant (and maybe a second) genre, a mood, a true latent v_k mixing them, a Zipf
 *           popularity and a birth time (new_item_frac of them, never the first G, are born
 *           inside the timeline and cannot be consumed before it).
 *   users   a long-tailed activity, a Dirichlet taste over genres and, with probability
 *           drift_prob, one drift to a taste that avoids the genres the old one favoured.
 *   events  who: a shuffled list of 3 slots per user (so every user survives P-LOO) plus draws
 *           by activity; what: the previous genre (sessions) or one from the taste in force,
 *           then an item of that genre born by then, with probability ∝ popularity x genre
 *           weight, by binary search over prefix sums of the genre's items sorted by birth
 *           (O(log n)); sometimes only among the genre's newest items (a launch boost, so new
 *           items really get consumed); an immediate repeat of the last item is redrawn.
 *   content titles, attributes (genre, mood, era) and per modality x = A_m v + noise with a
 *           fixed projection A_m, missing with probability mod_missing[m].
 * The world (everything but the events) comes from random streams of its own, so
 * dr__synth_truth_compute() re-derives it from the params alone (dataset_synth.h). Same
 * params, same bytes: every random number comes from dr_rng streams seeded by (seed, stream).
 * Rejected: sampling each event by a softmax of user . item latents over the whole catalogue:
 * O(n_items) per event (10^6 events x 10^5 items is far too slow), and the planted structure
 * (genre shares, drift, launch boosts) becomes hard to state and to test; the genre-then-item
 * draw keeps each piece a known, checkable distribution.
 */
#include "dataset_synth.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "rng.h"

/* ------------------------------------------------------------------ constants of the story */

#define SECOND_GENRE_PROB 0.3
#define MOOD_WEIGHT 0.35
#define LATENT_NOISE 0.25   /* norm of the item latent noise before normalising */
#define ACTIVITY_SIGMA 1.0  /* log-normal sigma of user activity */
#define DRIFT_AVOID 0.02    /* new-taste weight on genres the old taste favoured */
#define BOOST_PROB 0.2      /* share of draws restricted to recently born items */
#define BOOST_WINDOW 0.05   /* "recent" = born within this share of the timeline */
#define GUARANTEED 3        /* events every user gets */
#define REDRAWS 3           /* redraws against an immediate (user, item) repeat */
#define MAX_GAP 50.0        /* cap of one gap, in units of t_step */

enum {
    ST_GENRE = 1,
    ST_MOOD,
    ST_ITEM,
    ST_POP,
    ST_BIRTH,
    ST_USER,
    ST_DRIFT,
    ST_TIME,
    ST_SLOT,
    ST_EVENT,
    ST_TITLE,
    ST_MOD = 32 /* + 2m: projection A_m, + 2m + 1: presence and noise */
};

static const char *const genre_names[] = {
    "drama", "comedy", "thriller", "scifi", "romance", "horror", "documentary", "animation",
    "western", "fantasy", "mystery", "crime", "musical", "adventure", "war", "family"};
static const char *const mood_names[] = {"calm", "tense", "joyful", "dark", "quirky", "epic"};
#define N_MOODS ((uint32_t)DR_ARRAY_LEN(mood_names))
static const char *const title_adj[] = {
    "Quiet", "Broken", "Golden", "Last", "Hidden", "Silver", "Burning", "Lonely",
    "Crimson", "Distant", "Frozen", "Wild", "Secret", "Endless", "Hollow", "Bright"};
static const char *const title_noun[] = {
    "Harbor", "Garden", "Road", "Mirror", "Kingdom", "River", "Signal", "Winter",
    "Station", "Forest", "Letter", "Machine", "Island", "Summer", "Promise", "Tower"};
static const char *const mod_names[DR_SYNTH_MAX_MOD] = {"visual", "audio", "text"};

const char *dr__synth_genre_name(uint32_t g, char *buf, size_t cap) {
    uint32_t n = (uint32_t)DR_ARRAY_LEN(genre_names);
    if (g < n) snprintf(buf, cap, "%s", genre_names[g]);
    else snprintf(buf, cap, "%s-%u", genre_names[g % n], g / n + 1);
    return buf;
}

const char *dr__synth_mood_name(uint32_t m) { return m < N_MOODS ? mood_names[m] : "?"; }

/* ------------------------------------------------------------------ params */

dr_synth_params dr_synth_default_params(void) {
    dr_synth_params p;
    memset(&p, 0, sizeof p);
    p.seed = 1;
    p.n_users = 2000;
    p.n_items = 1500;
    p.n_events = 100000;
    p.n_genres = 16;
    p.latent_dim = 32;
    p.drift_prob = 0.3;
    p.new_item_frac = 0.15;
    p.zipf = 1.0;
    p.taste_conc = 0.3;
    p.repeat_prob = 0.5;
    p.t_start = 1600000000;
    p.t_step = 60;
    p.mod_dim[0] = 64;
    p.mod_dim[1] = 32;
    p.mod_dim[2] = 48;
    p.mod_noise[0] = 0.5;
    p.mod_noise[1] = 0.8;
    p.mod_noise[2] = 0.5;
    p.mod_missing[0] = 0.1;
    p.mod_missing[1] = 0.2;
    p.mod_missing[2] = 0.05;
    return p;
}


static dr_status bad(dr_error *err, const char *field, const char *why, double got) {
    return dr__fail(err, DR_ARG, "dr_synth_params.%s: %s (got %g)", field, why, got);
}

static bool in01(double x) { return x >= 0.0 && x <= 1.0; } /* false for NaN */

dr_status dr__synth_check_params(const dr_synth_params *p, dr_error *err) {
    if (!p) return dr__fail(err, DR_ARG, "dr_synth_params: NULL");
    if (p->n_users < 1 || p->n_users > DR_MAX_ROWS)
        return bad(err, "n_users", "must be in [1, 2^28]", (double)p->n_users);
    if (p->n_genres < 1 || p->n_genres > 65536)
        return bad(err, "n_genres", "must be in [1, 65536]", (double)p->n_genres);
    if (p->n_items < p->n_genres || p->n_items > DR_MAX_ROWS)
        return dr__fail(err, DR_ARG,
                       "dr_synth_params.n_items: must be in [n_genres = %u, 2^28] (got %u)",
                       p->n_genres, p->n_items);
    if (p->n_events > DR_SYNTH_MAX_EVENTS)
        return bad(err, "n_events", "must be at most 2^31", (double)p->n_events);
    if (p->n_events < (size_t)GUARANTEED * p->n_users)
        return dr__fail(err, DR_ARG,
                       "dr_synth_params.n_events: must be at least 3 * n_users = %zu, every user "
                       "gets 3 events (got %zu)",
                       (size_t)GUARANTEED * p->n_users, p->n_events);
    if (p->latent_dim < 2 || p->latent_dim > DR_MAX_DIM)
        return bad(err, "latent_dim", "must be in [2, 4096]", (double)p->latent_dim);
    if ((double)p->n_users * p->n_genres > DR_SYNTH_MAX_CELLS)
        return dr__fail(err, DR_ARG, "dr_synth_params.n_users * n_genres: too large (%u * %u)",
                       p->n_users, p->n_genres);
    if ((double)p->n_items * p->latent_dim > DR_SYNTH_MAX_CELLS)
        return dr__fail(err, DR_ARG, "dr_synth_params.n_items * latent_dim: too large (%u * %u)",
                       p->n_items, p->latent_dim);
    if (!in01(p->drift_prob)) return bad(err, "drift_prob", "must be in [0, 1]", p->drift_prob);
    if (!in01(p->new_item_frac))
        return bad(err, "new_item_frac", "must be in [0, 1]", p->new_item_frac);
    if (!(p->zipf >= 0.0 && p->zipf <= 20.0))
        return bad(err, "zipf", "must be in [0, 20]", p->zipf);
    if (!(p->taste_conc > 0.0 && p->taste_conc <= 1e6))
        return bad(err, "taste_conc", "must be in (0, 1e6]", p->taste_conc);
    if (!in01(p->repeat_prob)) return bad(err, "repeat_prob", "must be in [0, 1]", p->repeat_prob);
    if (p->t_start < 0 || p->t_start > ((int64_t)1 << 40))
        return bad(err, "t_start", "must be in [0, 2^40] UNIX seconds", (double)p->t_start);
    if (p->t_step < 1 || p->t_step > ((int64_t)1 << 30))
        return bad(err, "t_step", "must be in [1, 2^30] seconds", (double)p->t_step);
    if ((double)p->n_events * (double)p->t_step * (MAX_GAP + 1.0) > 4.0e18)
        return dr__fail(err, DR_ARG, "dr_synth_params.t_step: n_events * t_step overflows the "
                                    "timeline (%zu * %lld)", p->n_events, (long long)p->t_step);
    static const char *const dim_f[] = {"mod_dim[0] (visual)", "mod_dim[1] (audio)",
                                        "mod_dim[2] (text)"};
    static const char *const noise_f[] = {"mod_noise[0] (visual)", "mod_noise[1] (audio)",
                                          "mod_noise[2] (text)"};
    static const char *const miss_f[] = {"mod_missing[0] (visual)", "mod_missing[1] (audio)",
                                         "mod_missing[2] (text)"};
    for (int m = 0; m < DR_SYNTH_MAX_MOD; m++) {
        if (p->mod_dim[m] > 65536) return bad(err, dim_f[m], "must be in [0, 65536]",
                                              (double)p->mod_dim[m]);
        if ((double)p->n_items * p->mod_dim[m] > DR_SYNTH_MAX_CELLS)
            return dr__fail(err, DR_ARG, "dr_synth_params.%s: n_items * dim too large (%u * %u)",
                           dim_f[m], p->n_items, p->mod_dim[m]);
        if (!(p->mod_noise[m] >= 0.0 && p->mod_noise[m] <= 1e6))
            return bad(err, noise_f[m], "must be in [0, 1e6]", p->mod_noise[m]);
        if (!in01(p->mod_missing[m])) return bad(err, miss_f[m], "must be in [0, 1]",
                                                 p->mod_missing[m]);
    }
    return DR_OK;
}

/* ------------------------------------------------------------------ the world */

/* Everything but the events, indexed by generator number (user "u<k>", item "i<k>"). */
typedef struct world {
    uint32_t U, I, G, D;
    int64_t t_start, span;   /* nominal timeline [t_start, t_start + span] */
    float *genre_vec;        /* (G, D) unit */
    float *mood_vec;         /* (N_MOODS, D) unit */
    uint32_t *item_g1;       /* (I) */
    uint32_t *item_g2;       /* (I) DR_SYNTH_NO_GENRE = none */
    float *item_w1;          /* (I) weight of g1; g2 has 1 - w1 */
    uint32_t *item_mood;     /* (I) */
    float *item_v;           /* (I, D) unit */
    double *item_pop;        /* (I) */
    int64_t *item_birth;     /* (I) */
    int32_t *item_era;       /* (I) decade, e.g. 1980 */
    float *user_act;         /* (U) */
    float *taste0, *taste1;  /* (U, G) probabilities */
    int64_t *drift_t;        /* (U) -1 = none */
} world;

static void world_free(world *w) {
    dr__free(w->genre_vec);
    dr__free(w->mood_vec);
    dr__free(w->item_g1);
    dr__free(w->item_g2);
    dr__free(w->item_w1);
    dr__free(w->item_mood);
    dr__free(w->item_v);
    dr__free(w->item_pop);
    dr__free(w->item_birth);
    dr__free(w->item_era);
    dr__free(w->user_act);
    dr__free(w->taste0);
    dr__free(w->taste1);
    dr__free(w->drift_t);
    memset(w, 0, sizeof *w);
}

/* n standard normals times scale into x, using both Box-Muller outputs. */
static void fill_normal(dr_rng *r, float *x, size_t n, double scale) {
    size_t k = 0;
    while (k < n) {
        double u1 = dr__rng_uniform(r), u2 = dr__rng_uniform(r);
        if (u1 < 1e-300) u1 = 1e-300;
        double rad = sqrt(-2.0 * log(u1)) * scale, th = 6.283185307179586 * u2;
        x[k++] = (float)(rad * cos(th));
        if (k < n) x[k++] = (float)(rad * sin(th));
    }
}

static void normalize(float *x, uint32_t n) {
    double s = 0;
    for (uint32_t k = 0; k < n; k++) s += (double)x[k] * x[k];
    if (s <= 0) {
        x[0] = 1.0f;
        return;
    }
    float inv = (float)(1.0 / sqrt(s));
    for (uint32_t k = 0; k < n; k++) x[k] *= inv;
}

/* UNIX seconds -> decade (1980 for 1984), using the mean Gregorian year. */
static int32_t decade_of(int64_t t) {
    int64_t year = 1970 + (int64_t)floor((double)t / 31556952.0);
    return (int32_t)(year - (((year % 10) + 10) % 10));
}

/* A Dirichlet(conc) draw into p[0..G); avoid (may be NULL) down-weights favoured genres. */
static void dirichlet(dr_rng *r, double conc, float *p, uint32_t G, const float *avoid) {
    double s = 0;
    for (uint32_t g = 0; g < G; g++) {
        double x = dr__rng_gamma(r, conc);
        if (avoid && avoid[g] > 1.0f / (float)G) x *= DRIFT_AVOID;
        p[g] = (float)x;
        s += (double)p[g];
    }
    if (!(s > 0)) { /* every gamma underflowed (tiny conc): one genre */
        uint32_t pick = (uint32_t)dr__rng_below(r, G);
        for (uint32_t g = 0; g < G; g++) p[g] = g == pick ? 1.0f : 0.0f;
        return;
    }
    for (uint32_t g = 0; g < G; g++) p[g] = (float)(p[g] / s);
}

static dr_status world_build(const dr_synth_params *p, world *w) {
    uint64_t seed = p->seed;
    uint32_t U = p->n_users, I = p->n_items, G = p->n_genres, D = p->latent_dim;
    uint32_t *perm = NULL;
    memset(w, 0, sizeof *w);
    w->U = U, w->I = I, w->G = G, w->D = D;
    w->t_start = p->t_start;
    w->span = (int64_t)p->n_events * p->t_step;
    if (w->span < 1) w->span = 1;
    w->genre_vec = dr__malloc((size_t)G * D * sizeof(float));
    w->mood_vec = dr__malloc((size_t)N_MOODS * D * sizeof(float));
    w->item_g1 = dr__malloc((size_t)I * sizeof(uint32_t));
    w->item_g2 = dr__malloc((size_t)I * sizeof(uint32_t));
    w->item_w1 = dr__malloc((size_t)I * sizeof(float));
    w->item_mood = dr__malloc((size_t)I * sizeof(uint32_t));
    w->item_v = dr__malloc((size_t)I * D * sizeof(float));
    w->item_pop = dr__malloc((size_t)I * sizeof(double));
    w->item_birth = dr__malloc((size_t)I * sizeof(int64_t));
    w->item_era = dr__malloc((size_t)I * sizeof(int32_t));
    w->user_act = dr__malloc((size_t)U * sizeof(float));
    w->taste0 = dr__malloc((size_t)U * G * sizeof(float));
    w->taste1 = dr__malloc((size_t)U * G * sizeof(float));
    w->drift_t = dr__malloc((size_t)U * sizeof(int64_t));
    perm = dr__malloc((size_t)I * sizeof *perm);
    if (!w->genre_vec || !w->mood_vec || !w->item_g1 || !w->item_g2 || !w->item_w1 ||
        !w->item_mood || !w->item_v || !w->item_pop || !w->item_birth || !w->item_era ||
        !w->user_act || !w->taste0 || !w->taste1 || !w->drift_t || !perm)
        goto fail;

    dr_rng r;
    dr__rng_seed(&r, seed, ST_GENRE);
    for (uint32_t g = 0; g < G; g++) {
        fill_normal(&r, w->genre_vec + (size_t)g * D, D, 1.0);
        normalize(w->genre_vec + (size_t)g * D, D);
    }
    dr__rng_seed(&r, seed, ST_MOOD);
    for (uint32_t m = 0; m < N_MOODS; m++) {
        fill_normal(&r, w->mood_vec + (size_t)m * D, D, 1.0);
        normalize(w->mood_vec + (size_t)m * D, D);
    }

    /* items: genres, mood, latent */
    dr__rng_seed(&r, seed, ST_ITEM);
    double noise_sd = LATENT_NOISE / sqrt((double)D);
    for (uint32_t k = 0; k < I; k++) {
        uint32_t g1 = k < G ? k : (uint32_t)dr__rng_below(&r, G), g2 = DR_SYNTH_NO_GENRE;
        float w1 = 1.0f;
        if (G > 1 && dr__rng_uniform(&r) < SECOND_GENRE_PROB) {
            g2 = (uint32_t)dr__rng_below(&r, G - 1);
            if (g2 >= g1) g2++;
            w1 = (float)(1.0 - (0.15 + 0.25 * dr__rng_uniform(&r)));
        }
        uint32_t mood = (uint32_t)dr__rng_below(&r, N_MOODS);
        w->item_g1[k] = g1;
        w->item_g2[k] = g2;
        w->item_w1[k] = w1;
        w->item_mood[k] = mood;
        float *v = w->item_v + (size_t)k * D;
        fill_normal(&r, v, D, noise_sd);
        const float *c1 = w->genre_vec + (size_t)g1 * D, *cm = w->mood_vec + (size_t)mood * D;
        for (uint32_t d = 0; d < D; d++) v[d] += w1 * c1[d] + (float)MOOD_WEIGHT * cm[d];
        if (g2 != DR_SYNTH_NO_GENRE) {
            const float *c2 = w->genre_vec + (size_t)g2 * D;
            for (uint32_t d = 0; d < D; d++) v[d] += (1.0f - w1) * c2[d];
        }
        normalize(v, D);
    }

    /* popularity: Zipf over a random permutation */
    dr__rng_seed(&r, seed, ST_POP);
    for (uint32_t k = 0; k < I; k++) perm[k] = k;
    for (uint32_t k = I; k > 1; k--) {
        uint32_t j = (uint32_t)dr__rng_below(&r, k), t = perm[k - 1];
        perm[k - 1] = perm[j];
        perm[j] = t;
    }
    for (uint32_t rank = 0; rank < I; rank++)
        w->item_pop[perm[rank]] = pow((double)rank + 1.0, -p->zipf);

    /* births and eras: new items are chosen among k >= G (partial Fisher-Yates) */
    dr__rng_seed(&r, seed, ST_BIRTH);
    int32_t start_decade = decade_of(p->t_start);
    for (uint32_t k = 0; k < I; k++) {
        w->item_birth[k] = p->t_start;
        w->item_era[k] = start_decade - 10 * (int32_t)(1 + dr__rng_below(&r, 6));
    }
    double want = floor(p->new_item_frac * (double)I + 0.5);
    uint32_t n_new = (uint32_t)DR_MIN(want, (double)(I - G));
    uint32_t n_cand = I - G;
    for (uint32_t k = 0; k < n_cand; k++) perm[k] = G + k;
    for (uint32_t k = 0; k < n_new; k++) {
        uint32_t j = k + (uint32_t)dr__rng_below(&r, n_cand - k), t = perm[k];
        perm[k] = perm[j];
        perm[j] = t;
        uint32_t item = perm[k];
        w->item_birth[item] = p->t_start + 1 + (int64_t)dr__rng_below(&r, (uint64_t)w->span);
        w->item_era[item] = decade_of(w->item_birth[item]);
    }

    /* users: activity and taste */
    dr__rng_seed(&r, seed, ST_USER);
    for (uint32_t u = 0; u < U; u++) {
        w->user_act[u] = (float)exp(ACTIVITY_SIGMA * dr__rng_normal(&r));
        dirichlet(&r, p->taste_conc, w->taste0 + (size_t)u * G, G, NULL);
    }
    dr__rng_seed(&r, seed, ST_DRIFT);
    for (uint32_t u = 0; u < U; u++) {
        const float *t0 = w->taste0 + (size_t)u * G;
        float *t1 = w->taste1 + (size_t)u * G;
        if (dr__rng_uniform(&r) < p->drift_prob) {
            w->drift_t[u] = p->t_start + (int64_t)((0.2 + 0.6 * dr__rng_uniform(&r)) *
                                                   (double)w->span);
            dirichlet(&r, p->taste_conc, t1, G, t0);
        } else {
            w->drift_t[u] = -1;
            memcpy(t1, t0, (size_t)G * sizeof *t1);
        }
    }
    dr__free(perm);
    return DR_OK;
fail:
    dr__free(perm);
    world_free(w);
    return DR_NOMEM;
}

/* ------------------------------------------------------------------ genre pools */

/* Per genre: member items sorted by (birth, item), inclusive prefix sums of pop x weight. */
typedef struct pools {
    size_t *off;       /* (G + 1) */
    uint32_t *item;    /* (off[G]) */
    int64_t *birth;    /* (off[G]) */
    double *cum;       /* (off[G]) */
} pools;

typedef struct pool_entry {
    int64_t birth;
    uint32_t item;
    double w;
} pool_entry;

static int pool_entry_cmp(const void *a, const void *b) {
    const pool_entry *x = a, *y = b;
    if (x->birth != y->birth) return x->birth < y->birth ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

static void pools_free(pools *pl) {
    dr__free(pl->off);
    dr__free(pl->item);
    dr__free(pl->birth);
    dr__free(pl->cum);
}

static dr_status pools_build(const world *w, pools *pl) {
    uint32_t G = w->G, I = w->I;
    size_t n = 0, *cur = NULL;
    pool_entry *e = NULL;
    memset(pl, 0, sizeof *pl);
    for (uint32_t k = 0; k < I; k++) n += 1 + (w->item_g2[k] != DR_SYNTH_NO_GENRE);
    pl->off = dr__calloc((size_t)G + 1, sizeof *pl->off);
    cur = dr__malloc(((size_t)G + 1) * sizeof *cur);
    pl->item = dr__malloc(n * sizeof *pl->item);
    pl->birth = dr__malloc(n * sizeof *pl->birth);
    pl->cum = dr__malloc(n * sizeof *pl->cum);
    e = dr__malloc(n * sizeof *e);
    if (!pl->off || !cur || !pl->item || !pl->birth || !pl->cum || !e) goto fail;
    for (uint32_t k = 0; k < I; k++) {
        pl->off[w->item_g1[k] + 1]++;
        if (w->item_g2[k] != DR_SYNTH_NO_GENRE) pl->off[w->item_g2[k] + 1]++;
    }
    for (uint32_t g = 0; g < G; g++) pl->off[g + 1] += pl->off[g];
    memcpy(cur, pl->off, ((size_t)G + 1) * sizeof *cur);
    for (uint32_t k = 0; k < I; k++) {
        pool_entry x = {w->item_birth[k], k, w->item_pop[k] * w->item_w1[k]};
        e[cur[w->item_g1[k]]++] = x;
        if (w->item_g2[k] != DR_SYNTH_NO_GENRE) {
            x.w = w->item_pop[k] * (1.0 - w->item_w1[k]);
            e[cur[w->item_g2[k]]++] = x;
        }
    }
    for (uint32_t g = 0; g < G; g++) {
        size_t lo = pl->off[g], hi = pl->off[g + 1];
        qsort(e + lo, hi - lo, sizeof *e, pool_entry_cmp);
        double s = 0;
        for (size_t j = lo; j < hi; j++) {
            s += e[j].w;
            pl->item[j] = e[j].item;
            pl->birth[j] = e[j].birth;
            pl->cum[j] = s;
        }
    }
    dr__free(cur);
    dr__free(e);
    return DR_OK;
fail:
    dr__free(cur);
    dr__free(e);
    pools_free(pl);
    return DR_NOMEM;
}

/* Number of entries of b[0..n) that are <= t (b sorted ascending). */
static size_t count_le(const int64_t *b, size_t n, int64_t t) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid] <= t) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

/* First j in [lo, hi) with cum[j] > x, or hi - 1. */
static size_t search_cum(const double *cum, size_t lo, size_t hi, double x) {
    size_t end = hi;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (cum[mid] > x) hi = mid;
        else lo = mid + 1;
    }
    return lo < end ? lo : end - 1;
}

/* ------------------------------------------------------------------ generation */

/* Writes c followed by the decimal digits of k into buf; returns the length. */
static size_t fmt_id(char *buf, char c, uint32_t k) {
    char tmp[12];
    size_t n = 0, len = 0;
    do {
        tmp[n++] = (char)('0' + k % 10);
        k /= 10;
    } while (k);
    buf[len++] = c;
    while (n) buf[len++] = tmp[--n];
    buf[len] = 0;
    return len;
}

static dr_status add_attr(dr_dataset *ds, dr_attr_pair *pairs, size_t *n, uint32_t item,
                          const char *s) {
    uint32_t id;
    dr_status st = dr__strtab_intern(&ds->attrs, s, strlen(s), &id, NULL);
    if (st != DR_OK) return st;
    pairs[(*n)++] = (dr_attr_pair){item, id};
    return DR_OK;
}

/* Titles, attributes and modalities, written by dense id (imap: generator -> dense). */
static dr_status add_content(const dr_synth_params *p, const world *w, const uint32_t *imap,
                             dr_dataset *ds, dr_error *err) {
    dr_status s = DR_OK;
    uint32_t I = w->I, D = w->D;
    dr_attr_pair *pairs = NULL;
    uint32_t *gen = NULL; /* dense -> generator */
    float *x = NULL, *a = NULL;
    uint8_t *present = NULL;
    char buf[96], name[48];
    dr_rng r;

    pairs = dr__malloc((size_t)I * 3 * sizeof *pairs);
    gen = dr__malloc((size_t)I * sizeof *gen);
    s = DR_NOMEM;
    if (!pairs || !gen) goto fail;
    for (uint32_t k = 0; k < I; k++) gen[imap[k]] = k;

    dr__rng_seed(&r, p->seed, ST_TITLE);
    for (uint32_t k = 0; k < I; k++) {
        const char *adj = title_adj[dr__rng_below(&r, DR_ARRAY_LEN(title_adj))];
        const char *noun = title_noun[dr__rng_below(&r, DR_ARRAY_LEN(title_noun))];
        int len = snprintf(buf, sizeof buf, "The %s %s %u", adj, noun, k);
        if ((s = dr__dataset_set_title(ds, imap[k], buf, (size_t)len)) != DR_OK) goto fail;
    }
    /* attributes in dense order, so attribute ids follow first use in the dataset */
    size_t n_pairs = 0;
    for (uint32_t i = 0; i < I; i++) {
        uint32_t k = gen[i];
        snprintf(buf, sizeof buf, "genre=%s", dr__synth_genre_name(w->item_g1[k], name, sizeof name));
        if ((s = add_attr(ds, pairs, &n_pairs, i, buf)) != DR_OK) goto fail;
        snprintf(buf, sizeof buf, "mood=%s", mood_names[w->item_mood[k]]);
        if ((s = add_attr(ds, pairs, &n_pairs, i, buf)) != DR_OK) goto fail;
        snprintf(buf, sizeof buf, "era=%lds", (long)w->item_era[k]);
        if ((s = add_attr(ds, pairs, &n_pairs, i, buf)) != DR_OK) goto fail;
    }
    if ((s = dr__dataset_set_attrs(ds, pairs, n_pairs, err)) != DR_OK) goto fail;

    for (int m = 0; m < DR_SYNTH_MAX_MOD; m++) {
        uint32_t dim = p->mod_dim[m];
        if (!dim) continue;
        x = dr__calloc((size_t)I * dim, sizeof *x);
        a = dr__malloc((size_t)dim * D * sizeof *a);
        present = dr__malloc((size_t)I + 1);
        s = DR_NOMEM;
        if (!x || !a || !present) goto fail;
        dr__rng_seed(&r, p->seed, ST_MOD + 2 * (uint64_t)m);
        fill_normal(&r, a, (size_t)dim * D, 1.0); /* A_m (dim, D) */
        dr__rng_seed(&r, p->seed, ST_MOD + 2 * (uint64_t)m + 1);
        for (uint32_t k = 0; k < I; k++) {
            uint32_t i = imap[k];
            present[i] = dr__rng_uniform(&r) >= p->mod_missing[m];
            if (!present[i]) continue;
            float *row = x + (size_t)i * dim;
            const float *v = w->item_v + (size_t)k * D;
            fill_normal(&r, row, dim, p->mod_noise[m]);
            for (uint32_t j = 0; j < dim; j++) {
                const float *aj = a + (size_t)j * D;
                float acc = 0;
                for (uint32_t d = 0; d < D; d++) acc += aj[d] * v[d];
                row[j] += acc;
            }
        }
        if ((s = dr__dataset_add_modality(ds, mod_names[m], dim, x, present, err)) != DR_OK)
            goto fail;
        dr__free(x);
        dr__free(a);
        dr__free(present);
        x = a = NULL;
        present = NULL;
    }
    s = DR_OK;
fail:
    if (s == DR_NOMEM)
        s = dr__fail(err, s, "synth: out of memory adding titles, attributes and features for "
                            "%u items", I);
    dr__free(pairs);
    dr__free(gen);
    dr__free(x);
    dr__free(a);
    dr__free(present);
    return s;
}

dr_status dr_synth_generate(const dr_synth_params *p, dr_dataset **out, dr_error *err) {
    dr_status s;
    world w;
    pools pl;
    dr_builder *b = NULL;
    dr_dataset *ds = NULL;
    uint32_t *slot = NULL, *last_g = NULL, *last_item = NULL, *imap = NULL;
    double *act_cum = NULL;
    float *cdf0 = NULL, *cdf1 = NULL;
    uint8_t *used = NULL;
    bool have_world = false, have_pools = false;

    if (!out) return dr__fail(err, DR_ARG, "dr_synth_generate: out is NULL");
    *out = NULL;
    if ((s = dr__synth_check_params(p, err)) != DR_OK) return s;
    uint32_t U = p->n_users, I = p->n_items, G = p->n_genres;
    size_t E = p->n_events;

    if ((s = world_build(p, &w)) != DR_OK) goto fail;
    have_world = true;
    if ((s = pools_build(&w, &pl)) != DR_OK) goto fail;
    have_pools = true;
    s = DR_NOMEM;
    slot = dr__malloc(E * sizeof *slot);
    last_g = dr__malloc((size_t)U * sizeof *last_g);
    last_item = dr__malloc((size_t)U * sizeof *last_item);
    act_cum = dr__malloc((size_t)U * sizeof *act_cum);
    used = dr__calloc(I, 1);
    imap = dr__malloc((size_t)I * sizeof *imap);
    if (!slot || !last_g || !last_item || !act_cum || !used || !imap) goto fail;
    if ((s = dr__builder_create(&b)) != DR_OK) goto fail;

    /* taste CDFs, in place of the probabilities (the world is private here) */
    cdf0 = w.taste0;
    cdf1 = w.taste1;
    for (size_t u = 0; u < U; u++) {
        float c0 = 0, c1 = 0;
        for (uint32_t g = 0; g < G; g++) {
            c0 += cdf0[u * G + g];
            c1 += cdf1[u * G + g];
            cdf0[u * G + g] = c0;
            cdf1[u * G + g] = c1;
        }
    }

    /* who acts at each event: 3 slots per user, the rest by activity, shuffled */
    dr_rng r;
    dr__rng_seed(&r, p->seed, ST_SLOT);
    double acc = 0;
    for (uint32_t u = 0; u < U; u++) act_cum[u] = acc += w.user_act[u];
    size_t n_fixed = (size_t)GUARANTEED * U;
    for (size_t e = 0; e < n_fixed; e++) slot[e] = (uint32_t)(e / GUARANTEED);
    for (size_t e = n_fixed; e < E; e++)
        slot[e] = (uint32_t)search_cum(act_cum, 0, U, dr__rng_uniform(&r) * acc);
    for (size_t e = E; e > 1; e--) {
        size_t j = (size_t)dr__rng_below(&r, e);
        uint32_t t = slot[e - 1];
        slot[e - 1] = slot[j];
        slot[j] = t;
    }

    for (uint32_t u = 0; u < U; u++) last_g[u] = last_item[u] = UINT32_MAX;
    dr_rng rt, re;
    dr__rng_seed(&rt, p->seed, ST_TIME);
    dr__rng_seed(&re, p->seed, ST_EVENT);
    int64_t t = p->t_start;
    int64_t window = (int64_t)(BOOST_WINDOW * (double)w.span);
    if (window < p->t_step) window = p->t_step;
    char ubuf[16], ibuf[16];
    for (size_t e = 0; e < E; e++) {
        if (e) {
            double gap = -log(1.0 - dr__rng_uniform(&rt)) * (double)p->t_step;
            if (gap > MAX_GAP * (double)p->t_step) gap = MAX_GAP * (double)p->t_step;
            t += (int64_t)(gap + 0.5);
        }
        uint32_t u = slot[e];
        uint32_t g = last_g[u];
        if (g == UINT32_MAX || dr__rng_uniform(&re) >= p->repeat_prob) {
            const float *cdf = (w.drift_t[u] >= 0 && t >= w.drift_t[u] ? cdf1 : cdf0) +
                               (size_t)u * G;
            float x = (float)dr__rng_uniform(&re) * cdf[G - 1];
            uint32_t lo = 0, hi = G - 1; /* first g with cdf[g] > x */
            while (lo < hi) {
                uint32_t mid = (lo + hi) / 2;
                if (cdf[mid] > x) hi = mid;
                else lo = mid + 1;
            }
            g = lo;
        }
        size_t off = pl.off[g], len = pl.off[g + 1] - off;
        const int64_t *birth = pl.birth + off;
        const double *cum = pl.cum + off;
        size_t n_born = count_le(birth, len, t);
        if (n_born == 0) { /* cannot happen: item g is genre g's and born at t_start */
            s = dr__fail(err, DR_INTERNAL, "synth: genre %u has no item at time %lld", g,
                        (long long)t);
            goto fail;
        }
        size_t j = 0;
        for (int attempt = 0; attempt <= REDRAWS; attempt++) {
            size_t lo = 0;
            if (dr__rng_uniform(&re) < BOOST_PROB) {
                int64_t since = t - window > p->t_start ? t - window : p->t_start;
                lo = count_le(birth, n_born, since);
                if (lo == n_born) lo = 0; /* nothing recent in this genre */
            }
            double base = lo ? cum[lo - 1] : 0.0;
            j = search_cum(cum, lo, n_born, base + dr__rng_uniform(&re) * (cum[n_born - 1] - base));
            if (pl.item[off + j] != last_item[u]) break;
        }
        uint32_t k = pl.item[off + j];
        last_g[u] = g;
        last_item[u] = k;
        used[k] = 1;
        size_t ul = fmt_id(ubuf, 'u', u), il = fmt_id(ibuf, 'i', k);
        if ((s = dr__builder_add_event(b, ubuf, ul, ibuf, il, t, 1.0f, DR_TAG_NONE)) != DR_OK) {
            s = dr__fail(err, s, "synth: adding event %zu: %s", e, dr_status_message(s));
            goto fail;
        }
    }
    for (uint32_t k = 0; k < I; k++) {
        if (used[k]) continue;
        size_t il = fmt_id(ibuf, 'i', k);
        if ((s = dr__builder_add_item(b, ibuf, il)) != DR_OK) {
            s = dr__fail(err, s, "synth: adding catalogue item %u: %s", k, dr_status_message(s));
            goto fail;
        }
    }
    if ((s = dr__builder_finish(b, &ds, err)) != DR_OK) goto fail;
    if (ds->n_users != U || ds->n_items != I) {
        s = dr__fail(err, DR_INTERNAL, "synth: built %u users / %u items, expected %u / %u",
                    ds->n_users, ds->n_items, U, I);
        goto fail;
    }
    for (uint32_t k = 0; k < I; k++) {
        size_t il = fmt_id(ibuf, 'i', k);
        imap[k] = dr__strtab_find(&ds->items, ibuf, il);
        if (imap[k] == UINT32_MAX) {
            s = dr__fail(err, DR_INTERNAL, "synth: item %s lost by the builder", ibuf);
            goto fail;
        }
    }
    snprintf(ds->name, sizeof ds->name, "synth");
    ds->time_scale = 1.0;
    if ((s = add_content(p, &w, imap, ds, err)) != DR_OK) goto fail;
    *out = ds;
    ds = NULL;
    s = DR_OK;
fail:
    if (s == DR_NOMEM)
        s = dr__fail(err, DR_NOMEM, "synth: out of memory for %u users, %u items, %zu events", U,
                    I, E);
    dr_dataset_free(ds);
    dr__builder_free(b);
    if (have_pools) pools_free(&pl);
    if (have_world) world_free(&w);
    dr__free(slot);
    dr__free(last_g);
    dr__free(last_item);
    dr__free(act_cum);
    dr__free(used);
    dr__free(imap);
    return s;
}

/* ------------------------------------------------------------------ truth */

void dr__synth_truth_free(dr_synth_truth *t) {
    if (!t) return;
    dr__free(t->user_drift);
    dr__free(t->user_taste_before);
    dr__free(t->user_taste_after);
    dr__free(t->user_activity);
    dr__free(t->item_genre);
    dr__free(t->item_genre2);
    dr__free(t->item_genre_w);
    dr__free(t->item_mood);
    dr__free(t->item_birth);
    dr__free(t->item_pop);
    dr__free(t->item_latent);
    dr__free(t->genre_vec);
    memset(t, 0, sizeof *t);
}

dr_status dr__synth_truth_compute(const dr_synth_params *p, const dr_dataset *ds,
                                 dr_synth_truth *out, dr_error *err) {
    dr_status s;
    world w;
    uint32_t *umap = NULL, *imap = NULL;
    bool have_world = false;
    char buf[16];

    if (!out) return dr__fail(err, DR_ARG, "dr__synth_truth_compute: out is NULL");
    memset(out, 0, sizeof *out);
    if ((s = dr__synth_check_params(p, err)) != DR_OK) return s;
    uint32_t U = p->n_users, I = p->n_items, G = p->n_genres, D = p->latent_dim;
    if (ds && (ds->n_users != U || ds->n_items != I))
        return dr__fail(err, DR_ARG,
                       "synth truth: dataset has %u users / %u items, params say %u / %u",
                       ds->n_users, ds->n_items, U, I);
    if ((s = world_build(p, &w)) != DR_OK) goto fail;
    have_world = true;
    s = DR_NOMEM;
    umap = dr__malloc((size_t)U * sizeof *umap);
    imap = dr__malloc((size_t)I * sizeof *imap);
    out->user_drift = dr__malloc((size_t)U * sizeof *out->user_drift);
    out->user_taste_before = dr__malloc((size_t)U * G * sizeof(float));
    out->user_taste_after = dr__malloc((size_t)U * G * sizeof(float));
    out->user_activity = dr__malloc((size_t)U * sizeof(float));
    out->item_genre = dr__malloc((size_t)I * sizeof(uint32_t));
    out->item_genre2 = dr__malloc((size_t)I * sizeof(uint32_t));
    out->item_genre_w = dr__malloc((size_t)I * sizeof(float));
    out->item_mood = dr__malloc((size_t)I * sizeof(uint32_t));
    out->item_birth = dr__malloc((size_t)I * sizeof(int64_t));
    out->item_pop = dr__malloc((size_t)I * sizeof(double));
    out->item_latent = dr__malloc((size_t)I * D * sizeof(float));
    out->genre_vec = dr__malloc((size_t)G * D * sizeof(float));
    if (!umap || !imap || !out->user_drift || !out->user_taste_before ||
        !out->user_taste_after || !out->user_activity || !out->item_genre || !out->item_genre2 ||
        !out->item_genre_w || !out->item_mood || !out->item_birth || !out->item_pop ||
        !out->item_latent || !out->genre_vec)
        goto fail;
    for (uint32_t u = 0; u < U; u++) {
        umap[u] = u;
        if (!ds) continue;
        size_t len = fmt_id(buf, 'u', u);
        if ((umap[u] = dr__strtab_find(&ds->users, buf, len)) >= U) {
            s = dr__fail(err, DR_ARG, "synth truth: user %s is not in the dataset", buf);
            goto fail;
        }
    }
    for (uint32_t k = 0; k < I; k++) {
        imap[k] = k;
        if (!ds) continue;
        size_t len = fmt_id(buf, 'i', k);
        if ((imap[k] = dr__strtab_find(&ds->items, buf, len)) >= I) {
            s = dr__fail(err, DR_ARG, "synth truth: item %s is not in the dataset", buf);
            goto fail;
        }
    }
    out->n_users = U, out->n_items = I, out->n_genres = G, out->latent_dim = D;
    out->n_moods = N_MOODS;
    out->t_start = w.t_start;
    out->t_end = w.t_start + w.span;
    for (uint32_t u = 0; u < U; u++) {
        uint32_t d = umap[u];
        out->user_drift[d] = w.drift_t[u];
        out->user_activity[d] = w.user_act[u];
        memcpy(out->user_taste_before + (size_t)d * G, w.taste0 + (size_t)u * G, G * sizeof(float));
        memcpy(out->user_taste_after + (size_t)d * G, w.taste1 + (size_t)u * G, G * sizeof(float));
    }
    for (uint32_t k = 0; k < I; k++) {
        uint32_t d = imap[k];
        out->item_genre[d] = w.item_g1[k];
        out->item_genre2[d] = w.item_g2[k];
        out->item_genre_w[d] = w.item_w1[k];
        out->item_mood[d] = w.item_mood[k];
        out->item_birth[d] = w.item_birth[k];
        out->item_pop[d] = w.item_pop[k];
        memcpy(out->item_latent + (size_t)d * D, w.item_v + (size_t)k * D, D * sizeof(float));
    }
    memcpy(out->genre_vec, w.genre_vec, (size_t)G * D * sizeof(float));
    s = DR_OK;
fail:
    if (s == DR_NOMEM) s = dr__fail(err, DR_NOMEM, "synth truth: out of memory");
    if (s != DR_OK) dr__synth_truth_free(out);
    if (have_world) world_free(&w);
    dr__free(umap);
    dr__free(imap);
    return s;
}
