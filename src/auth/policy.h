/* policy.h - who may do what on a channel: the permission values and the
 * per-namespace channel policy that the permission rules (auth.h) read.
 * The server fills policies from the config ([channels], [namespace.NAME]:
 * server/config.c); the layers below it read them without a server
 * header. */
#ifndef HERALD_AUTH_POLICY_H
#define HERALD_AUTH_POLICY_H

#include "core/common.h"

/* Who may do something on a channel (values of channels.subscribe,
 * channels.publish, channels.history_for, channels.presence_for; each option
 * accepts a subset, docs/config.md). */
typedef enum hr_perm {
    HR_PERM_ANYONE = 0,         /* every client, anonymous ones included */
    HR_PERM_AUTHENTICATED = 1,  /* clients whose connection token gave a user */
    HR_PERM_TOKEN = 2,          /* subscribe only: a subscription token for the channel */
    HR_PERM_SUBSCRIBERS = 3,    /* clients subscribed to the channel */
    HR_PERM_NONE = 4,           /* no client (the server API still can) */
} hr_perm;

/* The channel options that a namespace can override ([namespace.NAME]). */
typedef struct hr_chan_policy {
    int64_t history_size;
    int64_t history_ttl_ms;
    bool presence;
    bool join_leave;
    bool allow_publish;         /* false = publish "none" (older spelling) */
    bool allow_anonymous;       /* false = subscribe at least "authenticated" (older spelling) */
    int64_t max_subscribers;    /* per channel, all workers; 0 = unlimited */
    int64_t subscribe;          /* hr_perm: anyone | authenticated | token */
    int64_t publish;            /* hr_perm: anyone | authenticated | subscribers | none */
    int64_t history_for;        /* hr_perm: anyone | authenticated | subscribers | none */
    int64_t presence_for;       /* hr_perm: anyone | authenticated | subscribers | none */
    bool proxy_subscribe;       /* a client's subscribe asks the backend's subscribe hook */
    bool proxy_publish;         /* a client's publish asks the backend's publish hook */
} hr_chan_policy;

#endif
