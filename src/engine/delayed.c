/* delayed.c - an engine wrapper that answers later (see engine.h
 * hr_engine_delayed_new): the inner engine's results are copied and the
 * caller's callback is posted to its worker, to run on a later loop turn,
 * as a network engine would. Publications are delivered by the inner
 * engine at once, so they can overtake the replies - the case callers
 * must handle. For tests (server.engine = memory-delayed). */
#include "engine/engine.h"

#include <string.h>

typedef struct dengine {
    hr_engine base;
    hr_engine *inner;
} dengine;

enum { D_PUBLISH, D_HISTORY, D_PRESENCE, D_DONE };

typedef struct dop {
    hr_engine_task task;
    int kind;
    void *ud;
    union {
        hr_publish_cb publish;
        hr_history_cb history;
        hr_presence_cb presence;
        hr_done_cb done;
    } cb;
    int err;
    uint64_t offset;
    char epoch[HR_EPOCH_LEN + 1];
    hr_history hist;
    hr_presence pres;
} dop;

static void dop_free(dop *d)
{
    for (size_t i = 0; i < d->hist.n; i++) hr_pub_unref(d->hist.pubs[i]);
    hr_free(d->hist.pubs);
    for (size_t i = 0; i < d->pres.n; i++) {
        hr_free((char *)d->pres.entries[i].client);
        hr_free((char *)d->pres.entries[i].user);
        hr_free((char *)d->pres.entries[i].info);
    }
    hr_free(d->pres.entries);
    hr_free(d);
}

static void dop_run(hr_engine_task *t, bool live)
{
    dop *d = (dop *)t;
    if (live) {
        switch (d->kind) {
        case D_PUBLISH: d->cb.publish(d->ud, d->err, d->offset, d->epoch); break;
        case D_HISTORY: d->cb.history(d->ud, d->err, d->err ? NULL : &d->hist); break;
        case D_PRESENCE: d->cb.presence(d->ud, d->err, d->err ? NULL : &d->pres); break;
        default: d->cb.done(d->ud, d->err); break;
        }
    }
    dop_free(d);
}

static dop *dop_new(int kind, void *ud)
{
    dop *d = hr_calloc(1, sizeof(*d));
    d->task.run = dop_run;
    d->kind = kind;
    d->ud = ud;
    return d;
}

static void later(dengine *e, dop *d) { e->base.post(e->base.hub, hr_engine_worker, &d->task); }

static void got_published(void *ud, int err, uint64_t offset, const char *epoch)
{
    dop *d = ud;
    d->err = err;
    d->offset = offset;
    if (epoch) memcpy(d->epoch, epoch, sizeof(d->epoch));
}

static void d_publish(hr_engine *be, const hr_chan_opts *o, hr_pub *pub, const char *k, size_t kl, hr_publish_cb cb,
                      void *ud)
{
    dengine *e = (dengine *)be;
    if (!cb) {
        e->inner->vt->publish(e->inner, o, pub, k, kl, NULL, NULL);
        return;
    }
    dop *d = dop_new(D_PUBLISH, ud);
    d->cb.publish = cb;
    e->inner->vt->publish(e->inner, o, pub, k, kl, got_published, d); /* the memory engine answers at once */
    later(e, d);
}

static void d_publish_event(hr_engine *be, hr_pub *pub)
{
    dengine *e = (dengine *)be;
    e->inner->vt->publish_event(e->inner, pub);
}

static void got_history(void *ud, int err, const hr_history *h)
{
    dop *d = ud;
    d->err = err;
    if (err) return;
    d->hist = *h;
    d->hist.pubs = h->n ? hr_malloc(h->n * sizeof(*d->hist.pubs)) : NULL;
    for (size_t i = 0; i < h->n; i++) d->hist.pubs[i] = hr_pub_ref(h->pubs[i]);
}

static void d_history(hr_engine *be, const hr_chan_opts *o, const char *ch, size_t len, const hr_history_query *q,
                      hr_history_cb cb, void *ud)
{
    dengine *e = (dengine *)be;
    dop *d = dop_new(D_HISTORY, ud);
    d->cb.history = cb;
    e->inner->vt->history(e->inner, o, ch, len, q, got_history, d);
    later(e, d);
}

static void got_done(void *ud, int err)
{
    dop *d = ud;
    d->err = err;
}

static void d_history_remove(hr_engine *be, const char *ch, size_t len, hr_done_cb cb, void *ud)
{
    dengine *e = (dengine *)be;
    if (!cb) {
        e->inner->vt->history_remove(e->inner, ch, len, NULL, NULL);
        return;
    }
    dop *d = dop_new(D_DONE, ud);
    d->cb.done = cb;
    e->inner->vt->history_remove(e->inner, ch, len, got_done, d);
    later(e, d);
}

static void d_presence_add(hr_engine *be, const char *ch, size_t len, const char *client, const char *user,
                           const char *info, hr_done_cb cb, void *ud)
{
    dengine *e = (dengine *)be;
    if (!cb) {
        e->inner->vt->presence_add(e->inner, ch, len, client, user, info, NULL, NULL);
        return;
    }
    dop *d = dop_new(D_DONE, ud);
    d->cb.done = cb;
    e->inner->vt->presence_add(e->inner, ch, len, client, user, info, got_done, d);
    later(e, d);
}

static void d_presence_remove(hr_engine *be, const char *ch, size_t len, const char *client, hr_done_cb cb, void *ud)
{
    dengine *e = (dengine *)be;
    if (!cb) {
        e->inner->vt->presence_remove(e->inner, ch, len, client, NULL, NULL);
        return;
    }
    dop *d = dop_new(D_DONE, ud);
    d->cb.done = cb;
    e->inner->vt->presence_remove(e->inner, ch, len, client, got_done, d);
    later(e, d);
}

static void got_presence(void *ud, int err, const hr_presence *p)
{
    dop *d = ud;
    d->err = err;
    if (err) return;
    d->pres.n = p->n;
    d->pres.users = p->users;
    d->pres.entries = p->n ? hr_calloc(p->n, sizeof(*d->pres.entries)) : NULL;
    for (size_t i = 0; i < p->n; i++) {
        d->pres.entries[i].client = hr_strdup(p->entries[i].client);
        d->pres.entries[i].user = hr_strdup(p->entries[i].user);
        d->pres.entries[i].info = p->entries[i].info ? hr_strdup(p->entries[i].info) : NULL;
    }
}

static void d_presence(hr_engine *be, const char *ch, size_t len, hr_presence_cb cb, void *ud)
{
    dengine *e = (dengine *)be;
    dop *d = dop_new(D_PRESENCE, ud);
    d->cb.presence = cb;
    e->inner->vt->presence(e->inner, ch, len, got_presence, d);
    later(e, d);
}

static void d_channels(hr_engine *be, void (*each)(void *ud, const char *name, size_t len, uint64_t offset), void *ud)
{
    dengine *e = (dengine *)be;
    e->inner->vt->channels(e->inner, each, ud);
}

static bool d_exists(hr_engine *be, const char *ch, size_t len)
{
    dengine *e = (dengine *)be;
    return e->inner->vt->exists ? e->inner->vt->exists(e->inner, ch, len) : true;
}

static void d_stats(hr_engine *be, hr_engine_stats *out)
{
    dengine *e = (dengine *)be;
    if (e->inner->vt->stats) e->inner->vt->stats(e->inner, out);
}

static void d_free(hr_engine *be)
{
    dengine *e = (dengine *)be;
    e->inner->vt->free(e->inner);
    hr_free(e);
}

static const hr_engine_vt delayed_vt = {
    .publish = d_publish,
    .publish_event = d_publish_event,
    .history = d_history,
    .history_remove = d_history_remove,
    .presence_add = d_presence_add,
    .presence_remove = d_presence_remove,
    .presence = d_presence,
    .channels = d_channels,
    .free = d_free,
    .exists = d_exists,
    .stats = d_stats,
};

hr_engine *hr_engine_delayed_new(hr_engine *inner)
{
    dengine *e = hr_calloc(1, sizeof(*e));
    e->base.vt = &delayed_vt;
    e->base.deliver = inner->deliver;
    e->base.hub = inner->hub;
    e->inner = inner;
    return &e->base;
}
