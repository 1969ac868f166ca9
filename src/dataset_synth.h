/*
 * dataset_synth.h - the ground truth behind dr_synth_generate() (internal: tests and benchmarks).
 *
 * DESIGN: the synthetic world (genres, item latents, popularity, birth times, user tastes and
 * drifts) is drawn from its own random streams, separate from the event stream, so it can be
 * recomputed from the params alone, without the events and without storing anything next to
 * the dataset. dr__synth_truth_compute() re-derives it and indexes it by the dataset's dense ids
 * (matching the external ids "u<k>" / "i<k>"), so it also works on a dataset that was saved
 * and loaded back. The alternative, hanging the truth off dr_dataset, would put
 * generator-specific fields into every dataset and would not survive a save/load round trip.
 */
#ifndef DR_DATASET_SYNTH_H
#define DR_DATASET_SYNTH_H

#include "dataset.h"

#define DR_SYNTH_NO_GENRE UINT32_MAX

typedef struct dr_synth_truth {
    uint32_t n_users, n_items, n_genres, latent_dim, n_moods;
    int64_t t_start, t_end;     /* timeline: first event, nominal end (t_start + n_events * t_step) */
    /* users, by dense id */
    int64_t *user_drift;        /* (n_users) UNIX seconds of the taste change, -1 = never */
    float *user_taste_before;   /* (n_users, n_genres) genre distribution before the drift */
    float *user_taste_after;    /* (n_users, n_genres) after it; = before when no drift */
    float *user_activity;       /* (n_users) relative activity weight (mean about 1) */
    /* items, by dense id */
    uint32_t *item_genre;       /* (n_items) dominant genre */
    uint32_t *item_genre2;      /* (n_items) second genre or DR_SYNTH_NO_GENRE */
    float *item_genre_w;        /* (n_items) weight of the dominant genre in (0.5, 1] */
    uint32_t *item_mood;        /* (n_items) mood index */
    int64_t *item_birth;        /* (n_items) UNIX seconds; t_start for items there from the start */
    double *item_pop;           /* (n_items) base popularity weight (Zipf, max 1) */
    float *item_latent;         /* (n_items, latent_dim) unit-norm true latent */
    float *genre_vec;           /* (n_genres, latent_dim) unit genre directions */
} dr_synth_truth;

/*
 * Recomputes the truth for params p and indexes it by ds's dense ids. ds must hold the ids of
 * dr_synth_generate(p) (for example that dataset saved and loaded back); ds = NULL indexes by
 * generator number instead (user "u<k>" is k). DR_ARG when p is invalid or ds does not match.
 */
dr_status dr__synth_truth_compute(const dr_synth_params *p, const dr_dataset *ds,
                                 dr_synth_truth *out, dr_error *err);
void dr__synth_truth_free(dr_synth_truth *t); /* frees the arrays; NULL and zeroed are fine */

/* Name of genre g ("drama", ...; "drama-2" past the built-in list), written into buf. */
const char *dr__synth_genre_name(uint32_t g, char *buf, size_t cap);
/* Name of mood m ("calm", ...), m < the truth's n_moods. */
const char *dr__synth_mood_name(uint32_t m);

/* Checks p; DR_ARG with a message naming the field. */
dr_status dr__synth_check_params(const dr_synth_params *p, dr_error *err);

#endif /* DR_DATASET_SYNTH_H */
