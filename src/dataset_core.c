/*
 * dataset_core.c - the dataset builder (stable time sort + dense remap), accessors, metadata
 * setters and statistics. Loaders (load_*.c) and the synthetic generator
 * (dataset_synth.c) all end here, so the id order of ../shared/PROTOCOL.md is implemented once.
 *
 * DESIGN: rows are kept in push order with provisional ids from two string tables. finish()
 * sorts an index array by time with a bottom-up merge sort (stable, O(n log n), no recursion;
 * qsort was rejected because it is not stable and a tie-break on the index costs the same),
 * then walks the sorted rows handing out final ids on first appearance, then builds per-user
 * histories with a stable counting sort. An already-sorted input (the common case) skips
 * the sort.
 */
#include "dataset.h"

#include <stdio.h>
#include <stdlib.h>

/* ------------------------------------------------------------------ report */

void dr__report_skip(dr_load_report *r, dr_skip_reason why, const char *fmt, ...) {
    if ((unsigned)why >= DR_SKIP_COUNT) why = DR_SKIP_FIELD;
    r->skipped[why]++;
    if (r->n_msgs < DR_REPORT_MAX_MSGS) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->msgs[r->n_msgs], sizeof r->msgs[0], fmt, ap);
        va_end(ap);
        r->n_msgs++;
    }
}

/* ------------------------------------------------------------------ builder */

struct dr_builder {
    dr_strtab users, items;    /* provisional ids, in push order */
    DR_VEC(uint32_t) u;
    DR_VEC(uint32_t) i;
    DR_VEC(int64_t) t;
    DR_VEC(float) w;
    DR_VEC(uint8_t) tag;
    DR_VEC(uint32_t) catalogue; /* provisional item ids registered by add_item */
};

dr_status dr__builder_create(dr_builder **out) {
    *out = dr__calloc(1, sizeof **out);
    return *out ? DR_OK : DR_NOMEM;
}

void dr__builder_free(dr_builder *b) {
    if (!b) return;
    dr__strtab_free(&b->users);
    dr__strtab_free(&b->items);
    dr_vec_free(&b->u);
    dr_vec_free(&b->i);
    dr_vec_free(&b->t);
    dr_vec_free(&b->w);
    dr_vec_free(&b->tag);
    dr_vec_free(&b->catalogue);
    dr__free(b);
}

dr_status dr__builder_add_event(dr_builder *b, const char *user, size_t user_len,
                               const char *item, size_t item_len, int64_t time, float weight,
                               uint8_t tag) {
    uint32_t u, i;
    if (b->u.n >= UINT32_MAX - 1) return DR_LIMIT;
    dr_status s = dr__strtab_intern(&b->users, user, user_len, &u, NULL);
    if (s != DR_OK) return s;
    if ((s = dr__strtab_intern(&b->items, item, item_len, &i, NULL)) != DR_OK) return s;
    size_t need = b->u.n + 1; /* reserve all five first: the arrays never differ in length */
    if (dr_vec_reserve(&b->u, need) || dr_vec_reserve(&b->i, need) ||
        dr_vec_reserve(&b->t, need) || dr_vec_reserve(&b->w, need) ||
        dr_vec_reserve(&b->tag, need))
        return DR_NOMEM;
    b->u.a[b->u.n++] = u;
    b->i.a[b->i.n++] = i;
    b->t.a[b->t.n++] = time;
    b->w.a[b->w.n++] = weight;
    b->tag.a[b->tag.n++] = tag;
    return DR_OK;
}

dr_status dr__builder_add_item(dr_builder *b, const char *item, size_t len) {
    uint32_t i;
    bool is_new;
    dr_status s = dr__strtab_intern(&b->items, item, len, &i, &is_new);
    if (s != DR_OK) return s;
    if (is_new && dr_vec_push(&b->catalogue, i)) return DR_NOMEM;
    return DR_OK;
}

/* Stable sort of idx[0..n) by key[idx]; tmp has n entries. */
static void merge_sort_by_time(uint32_t *idx, uint32_t *tmp, size_t n, const int64_t *key) {
    uint32_t *src = idx, *dst = tmp;
    for (size_t width = 1; width < n; width *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * width) {
            size_t mid = DR_MIN(lo + width, n), hi = DR_MIN(lo + 2 * width, n);
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) dst[k++] = key[src[b]] < key[src[a]] ? src[b++] : src[a++];
            while (a < mid) dst[k++] = src[a++];
            while (b < hi) dst[k++] = src[b++];
        }
        uint32_t *t = src;
        src = dst;
        dst = t;
    }
    if (src != idx) memcpy(idx, src, n * sizeof *idx);
}

/* Moves the provisional table's strings into `to` in the order given by perm (new -> old). */
static dr_status strtab_reorder(dr_strtab *from, const uint32_t *perm, uint32_t n, dr_strtab *to) {
    for (uint32_t k = 0; k < n; k++) {
        const char *s = from->str[perm[k]];
        uint32_t id;
        dr_status st = dr__strtab_intern(to, s, strlen(s), &id, NULL);
        if (st != DR_OK) return st;
    }
    return DR_OK;
}

dr_status dr__builder_finish(dr_builder *b, dr_dataset **out, dr_error *err) {
    dr_status s = DR_OK;
    uint32_t *order = NULL, *tmp = NULL, *umap = NULL, *imap = NULL, *uperm = NULL, *iperm = NULL;
    dr_dataset *ds = NULL;
    *out = NULL;
    size_t n = b->u.n;
    uint32_t nu_raw = b->users.n, ni_raw = b->items.n;
    if (n == 0) return dr__fail(err, DR_FORMAT, "no interactions were accepted");

    ds = dr__dataset_alloc();
    order = dr__malloc(n * sizeof *order);
    umap = dr__malloc((size_t)nu_raw * sizeof *umap + 1);
    imap = dr__malloc((size_t)ni_raw * sizeof *imap + 1);
    uperm = dr__malloc((size_t)nu_raw * sizeof *uperm + 1);
    iperm = dr__malloc((size_t)ni_raw * sizeof *iperm + 1);
    if (!ds || !order || !umap || !imap || !uperm || !iperm) goto nomem;

    bool sorted = true;
    for (size_t k = 0; k < n; k++) {
        order[k] = (uint32_t)k;
        if (k && b->t.a[k] < b->t.a[k - 1]) sorted = false;
    }
    if (!sorted) {
        if (!(tmp = dr__malloc(n * sizeof *tmp))) goto nomem;
        merge_sort_by_time(order, tmp, n, b->t.a);
    }

    memset(umap, 0xff, (size_t)nu_raw * sizeof *umap);
    memset(imap, 0xff, (size_t)ni_raw * sizeof *imap);
    uint32_t nu = 0, ni = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t r = order[k];
        if (umap[b->u.a[r]] == UINT32_MAX) uperm[nu] = b->u.a[r], umap[b->u.a[r]] = nu++;
        if (imap[b->i.a[r]] == UINT32_MAX) iperm[ni] = b->i.a[r], imap[b->i.a[r]] = ni++;
    }
    for (size_t k = 0; k < b->catalogue.n; k++) {
        uint32_t r = b->catalogue.a[k];
        if (imap[r] == UINT32_MAX) iperm[ni] = r, imap[r] = ni++;
    }
    ds->n_users = nu;
    ds->n_items = ni;
    ds->n_events = n;
    if ((s = strtab_reorder(&b->users, uperm, nu, &ds->users)) != DR_OK ||
        (s = strtab_reorder(&b->items, iperm, ni, &ds->items)) != DR_OK)
        goto nomem;

    ds->ev_user = dr__malloc(n * sizeof *ds->ev_user);
    ds->ev_item = dr__malloc(n * sizeof *ds->ev_item);
    ds->ev_time = dr__malloc(n * sizeof *ds->ev_time);
    ds->ev_weight = dr__malloc(n * sizeof *ds->ev_weight);
    ds->ev_tag = dr__malloc(n * sizeof *ds->ev_tag);
    ds->user_off = dr__calloc((size_t)nu + 1, sizeof *ds->user_off);
    ds->hist_item = dr__malloc(n * sizeof *ds->hist_item);
    ds->hist_time = dr__malloc(n * sizeof *ds->hist_time);
    ds->hist_event = dr__malloc(n * sizeof *ds->hist_event);
    ds->title = dr__calloc(ni, sizeof *ds->title);
    if (!ds->ev_user || !ds->ev_item || !ds->ev_time || !ds->ev_weight || !ds->ev_tag ||
        !ds->user_off || !ds->hist_item || !ds->hist_time || !ds->hist_event || !ds->title)
        goto nomem;
    for (size_t k = 0; k < n; k++) {
        uint32_t r = order[k];
        ds->ev_user[k] = umap[b->u.a[r]];
        ds->ev_item[k] = imap[b->i.a[r]];
        ds->ev_time[k] = b->t.a[r];
        ds->ev_weight[k] = b->w.a[r];
        ds->ev_tag[k] = b->tag.a[r];
        ds->user_off[ds->ev_user[k] + 1]++;
    }
    for (uint32_t u = 0; u < nu; u++) ds->user_off[u + 1] += ds->user_off[u];
    /* stable counting sort by user: reuse umap as a per-user cursor */
    for (uint32_t u = 0; u < nu; u++) umap[u] = 0;
    for (size_t k = 0; k < n; k++) {
        uint32_t u = ds->ev_user[k];
        size_t at = ds->user_off[u] + umap[u]++;
        ds->hist_item[at] = ds->ev_item[k];
        ds->hist_time[at] = ds->ev_time[k];
        ds->hist_event[at] = (uint32_t)k;
    }
    ds->time_scale = 1.0;
    snprintf(ds->name, sizeof ds->name, "dataset");
    *out = ds;
    ds = NULL;
    goto done;
nomem:
    s = dr__fail(err, DR_NOMEM, "out of memory building a dataset of %zu interactions", n);
done:
    dr_dataset_free(ds);
    dr__free(order);
    dr__free(tmp);
    dr__free(umap);
    dr__free(imap);
    dr__free(uperm);
    dr__free(iperm);
    return s;
}

/* ------------------------------------------------------------------ lifetime */

dr_dataset *dr__dataset_alloc(void) { return dr__calloc(1, sizeof(dr_dataset)); }

void dr_dataset_free(dr_dataset *ds) {
    if (!ds) return;
    dr__free(ds->source);
    dr__free(ds->ev_user);
    dr__free(ds->ev_item);
    dr__free(ds->ev_time);
    dr__free(ds->ev_weight);
    dr__free(ds->ev_tag);
    dr__free(ds->user_off);
    dr__free(ds->hist_item);
    dr__free(ds->hist_time);
    dr__free(ds->hist_event);
    if (ds->title)
        for (uint32_t i = 0; i < ds->n_items; i++) dr__free(ds->title[i]);
    dr__free(ds->title);
    dr__strtab_free(&ds->users);
    dr__strtab_free(&ds->items);
    dr__strtab_free(&ds->attrs);
    dr__free(ds->item_attr_off);
    dr__free(ds->item_attr);
    for (int m = 0; m < ds->n_mod; m++) {
        dr__free(ds->mod[m].x);
        dr__free(ds->mod[m].present);
    }
    dr__free(ds);
}

/* ------------------------------------------------------------------ metadata setters */

dr_status dr__dataset_set_title(dr_dataset *ds, uint32_t i, const char *s, size_t n) {
    if (i >= ds->n_items) return DR_RANGE;
    char *t = dr__strndup(s, n);
    if (!t) return DR_NOMEM;
    dr__free(ds->title[i]);
    ds->title[i] = t;
    return DR_OK;
}

static int attr_pair_cmp(const void *a, const void *b) {
    const dr_attr_pair *x = a, *y = b;
    if (x->item != y->item) return x->item < y->item ? -1 : 1;
    return x->attr < y->attr ? -1 : x->attr > y->attr;
}

dr_status dr__dataset_set_attrs(dr_dataset *ds, dr_attr_pair *pairs, size_t n, dr_error *err) {
    for (size_t k = 0; k < n; k++)
        if (pairs[k].item >= ds->n_items || pairs[k].attr >= ds->attrs.n)
            return dr__fail(err, DR_RANGE, "attribute pair %zu out of range", k);
    qsort(pairs, n, sizeof *pairs, attr_pair_cmp);
    size_t *off = dr__calloc((size_t)ds->n_items + 1, sizeof *off);
    uint32_t *a = dr__malloc((n ? n : 1) * sizeof *a);
    if (!off || !a) {
        dr__free(off);
        dr__free(a);
        return dr__fail(err, DR_NOMEM, "out of memory for %zu attributes", n);
    }
    size_t m = 0;
    for (size_t k = 0; k < n; k++) {
        if (k && pairs[k].item == pairs[k - 1].item && pairs[k].attr == pairs[k - 1].attr)
            continue; /* the same attribute twice on one item counts once */
        a[m++] = pairs[k].attr;
        off[pairs[k].item + 1]++;
    }
    for (uint32_t i = 0; i < ds->n_items; i++) off[i + 1] += off[i];
    dr__free(ds->item_attr_off);
    dr__free(ds->item_attr);
    ds->item_attr_off = off;
    ds->item_attr = a;
    return DR_OK;
}

dr_status dr__dataset_add_modality(dr_dataset *ds, const char *name, uint32_t dim,
                                  const float *x, const uint8_t *present, dr_error *err) {
    if (ds->n_mod >= DR_MAX_MODALITIES)
        return dr__fail(err, DR_LIMIT, "modality %s: at most %d modalities", name,
                       DR_MAX_MODALITIES);
    if (dim == 0 || strlen(name) >= sizeof ds->mod[0].name)
        return dr__fail(err, DR_ARG, "modality '%s': bad name or zero dimension", name);
    for (int m = 0; m < ds->n_mod; m++)
        if (strcmp(ds->mod[m].name, name) == 0)
            return dr__fail(err, DR_ARG, "modality %s given twice", name);
    size_t cells = (size_t)ds->n_items * dim;
    dr_modality *md = &ds->mod[ds->n_mod];
    md->x = dr__malloc(cells * sizeof *md->x);
    md->present = dr__malloc((size_t)ds->n_items + 1);
    if (!md->x || !md->present) {
        dr__free(md->x);
        dr__free(md->present);
        md->x = NULL;
        md->present = NULL;
        return dr__fail(err, DR_NOMEM, "modality %s: out of memory", name);
    }
    memcpy(md->x, x, cells * sizeof *md->x);
    memcpy(md->present, present, ds->n_items);
    snprintf(md->name, sizeof md->name, "%s", name);
    md->dim = dim;
    ds->n_mod++;
    return DR_OK;
}

/* ------------------------------------------------------------------ accessors */

const dr_load_report *dr_dataset_report(const dr_dataset *ds) { return &ds->report; }
const char *dr_dataset_name(const dr_dataset *ds) { return ds->name; }
uint32_t dr_dataset_n_users(const dr_dataset *ds) { return ds->n_users; }
uint32_t dr_dataset_n_items(const dr_dataset *ds) { return ds->n_items; }
size_t dr_dataset_n_events(const dr_dataset *ds) { return ds->n_events; }

const char *dr_dataset_user_id(const dr_dataset *ds, uint32_t u) {
    return u < ds->n_users ? ds->users.str[u] : NULL;
}

const char *dr_dataset_item_id(const dr_dataset *ds, uint32_t i) {
    return i < ds->n_items ? ds->items.str[i] : NULL;
}

const char *dr_dataset_item_title(const dr_dataset *ds, uint32_t i) {
    return i < ds->n_items && ds->title && ds->title[i] ? ds->title[i] : "";
}

dr_status dr_dataset_find_user(const dr_dataset *ds, const char *ext, uint32_t *u) {
    uint32_t id = dr__strtab_find(&ds->users, ext, strlen(ext));
    if (id == UINT32_MAX) return DR_NOTFOUND;
    *u = id;
    return DR_OK;
}

dr_status dr_dataset_find_item(const dr_dataset *ds, const char *ext, uint32_t *i) {
    uint32_t id = dr__strtab_find(&ds->items, ext, strlen(ext));
    if (id == UINT32_MAX) return DR_NOTFOUND;
    *i = id;
    return DR_OK;
}

size_t dr_dataset_item_attrs(const dr_dataset *ds, uint32_t i, const char **out, size_t cap) {
    if (i >= ds->n_items || !ds->item_attr_off) return 0;
    size_t lo = ds->item_attr_off[i], hi = ds->item_attr_off[i + 1];
    for (size_t k = lo; k < hi && k - lo < cap; k++) out[k - lo] = ds->attrs.str[ds->item_attr[k]];
    return hi - lo;
}

size_t dr_dataset_user_items(const dr_dataset *ds, uint32_t u, const uint32_t **items,
                             const int64_t **times) {
    if (u >= ds->n_users) {
        if (items) *items = NULL;
        if (times) *times = NULL;
        return 0;
    }
    size_t lo = ds->user_off[u];
    if (items) *items = ds->hist_item + lo;
    if (times) *times = ds->hist_time + lo;
    return ds->user_off[u + 1] - lo;
}

int dr_dataset_n_modalities(const dr_dataset *ds) { return ds->n_mod; }

dr_status dr_dataset_modality(const dr_dataset *ds, int m, const char **name, uint32_t *dim,
                              const float **x, const uint8_t **present) {
    if (m < 0 || m >= ds->n_mod) return DR_RANGE;
    if (name) *name = ds->mod[m].name;
    if (dim) *dim = ds->mod[m].dim;
    if (x) *x = ds->mod[m].x;
    if (present) *present = ds->mod[m].present;
    return DR_OK;
}

/* ------------------------------------------------------------------ statistics */

static int u32_cmp(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

dr_status dr_dataset_get_stats(const dr_dataset *ds, dr_dataset_stats *st) {
    memset(st, 0, sizeof *st);
    st->n_users = ds->n_users;
    st->n_items = ds->n_items;
    st->n_events = ds->n_events;
    st->n_attrs = ds->attrs.n;
    for (uint32_t i = 0; i < ds->n_items; i++) st->n_titled_items += ds->title && ds->title[i];
    st->n_modalities = ds->n_mod;
    st->time_scale = ds->time_scale;
    st->has_given_split = ds->has_given_split;
    if (ds->n_events) {
        st->t_min = ds->ev_time[0];
        st->t_max = ds->ev_time[ds->n_events - 1];
        st->has_time = st->t_min != st->t_max;
        size_t k = (size_t)(0.8 * (double)ds->n_events);
        if (k >= ds->n_events) k = ds->n_events - 1;
        st->t0 = ds->ev_time[k];
        size_t lo = 0, hi = ds->n_events; /* first event with time >= t0 */
        while (lo < hi) {
            size_t mid = lo + (hi - lo) / 2;
            if (ds->ev_time[mid] < st->t0) lo = mid + 1;
            else hi = mid;
        }
        st->n_pre_t0 = lo;
    }
    if (ds->n_users && ds->n_items)
        st->density = (double)ds->n_events / ((double)ds->n_users * (double)ds->n_items);
    uint32_t *len = dr__malloc((size_t)ds->n_users * sizeof *len + 1);
    if (!len) return DR_NOMEM;
    for (uint32_t u = 0; u < ds->n_users; u++)
        len[u] = (uint32_t)(ds->user_off[u + 1] - ds->user_off[u]);
    if (ds->n_users) {
        qsort(len, ds->n_users, sizeof *len, u32_cmp);
        st->min_user_len = len[0];
        st->median_user_len = len[ds->n_users / 2];
        st->max_user_len = len[ds->n_users - 1];
    }
    dr__free(len);
    return DR_OK;
}
