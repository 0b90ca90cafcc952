/* sim_heap.c - the simulator's event queue: a binary min-heap on time.
 * Ties keep no particular order; the engine processes every event of one
 * time together (a batch), so the order inside a batch does not matter. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#include <stdlib.h>

#include "sim_internal.h"

int sim_heap_push(struct sim_heap *h, struct sim_event e)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        struct sim_event *v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return -1;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t up = (i - 1) / 2;
        if (h->v[up].t <= e.t)
            break;
        h->v[i] = h->v[up];
        i = up;
    }
    h->v[i] = e;
    return 0;
}

struct sim_event sim_heap_pop(struct sim_heap *h)
{
    struct sim_event top = h->v[0], last = h->v[--h->n];
    size_t i = 0, n = h->n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n)
            break;
        if (c + 1 < n && h->v[c + 1].t < h->v[c].t)
            c++;
        if (last.t <= h->v[c].t)
            break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (n > 0)
        h->v[i] = last;
    return top;
}

void sim_heap_free(struct sim_heap *h)
{
    free(h->v);
    *h = (struct sim_heap){0};
}
