/* train_mlp.c - data-parallel training of a two-layer perceptron with Chorus.
 *
 * Every rank holds the same model and its own shard of a synthetic
 * regression data set (inputs from a seeded generator, targets from a fixed
 * "teacher" network), computes gradients on its shard, and averages them
 * over all ranks with chorus_allreduce before each SGD step - the loop of
 * every data-parallel trainer. The gradient of the output layer is known
 * first in the backward pass: its allreduce starts (chorus_iallreduce) before
 * the hidden layer's gradient is computed, so the two overlap; then both are
 * waited for. At the end every rank checks that all ranks hold bit-identical
 * weights (allreduce MIN and MAX of a checksum) and exits nonzero otherwise.
 *
 *   mpicc train_mlp.c $(pkg-config --cflags --libs chorus) -lm -o train_mlp
 *   mpirun -np 2 ./train_mlp                 # gradients through Chorus
 *   mpirun -np 2 ./train_mlp --mpi           # the same through MPI_Iallreduce
 *
 * Options: --epochs N (20) --samples N per rank (1024) --batch N (32)
 * --hidden N (64) --lr X (0.05) --seed N (1) --no-overlap (blocking
 * allreduces) --dump FILE (rank 0 writes the final weights, one per line).
 */
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <chorus.h>
#include <chorus_mpi.h>

#define IN_DIM 16
#define OUT_DIM 4
#define TEACHER_HIDDEN 8

struct options {
    int use_mpi, overlap, epochs, samples, batch, hidden, seed;
    float lr;
    const char *dump;
};

/* The model: the layer-1 block [W1 (hidden x IN_DIM), b1 (hidden)] and the
 * layer-2 block [W2 (OUT_DIM x hidden), b2 (OUT_DIM)], each contiguous so
 * that one allreduce moves a layer's whole gradient. */
struct model {
    int hidden;
    size_t n1, n2;
    float *p1, *p2; /* parameters */
    float *g1, *g2; /* gradients */
};

static chorus_comm_t comm;
static int rank, nranks;

static void die(const char *what, chorus_result_t res)
{
    fprintf(stderr, "rank %d: %s failed: %s: %s\n", rank, what, chorus_get_error_string(res),
            chorus_get_last_error());
    MPI_Abort(MPI_COMM_WORLD, 1);
}
#define CHECK(call)                                                                  \
    do {                                                                             \
        chorus_result_t res_ = (call);                                               \
        if (res_ != CHORUS_SUCCESS)                                                  \
            die(#call, res_);                                                        \
    } while (0)

/* splitmix64: a deterministic stream from (seed, index), so a sample's value
 * depends on its global index only, not on which rank draws it. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static float uniform(uint64_t seed, uint64_t i) /* in [-1, 1) */
{
    return (float)((double)(mix(seed * 0x100000001b3ull ^ mix(i)) >> 11) * 0x1p-52 - 1.0);
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);
    if (!p) {
        fprintf(stderr, "rank %d: out of memory\n", rank);
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return p;
}

/* This rank's shard: x (samples x IN_DIM) and the teacher's outputs y. */
static void make_shard(const struct options *o, float *x, float *y)
{
    float tw1[TEACHER_HIDDEN][IN_DIM], tw2[OUT_DIM][TEACHER_HIDDEN];
    for (int h = 0; h < TEACHER_HIDDEN; h++)
        for (int d = 0; d < IN_DIM; d++)
            tw1[h][d] = uniform(1000 + (uint64_t)o->seed, (uint64_t)(h * IN_DIM + d));
    for (int k = 0; k < OUT_DIM; k++)
        for (int h = 0; h < TEACHER_HIDDEN; h++)
            tw2[k][h] = uniform(2000 + (uint64_t)o->seed, (uint64_t)(k * TEACHER_HIDDEN + h));
    for (int s = 0; s < o->samples; s++) {
        uint64_t g = (uint64_t)rank * (uint64_t)o->samples + (uint64_t)s; /* global index */
        float *xs = x + (size_t)s * IN_DIM, hid[TEACHER_HIDDEN];
        for (int d = 0; d < IN_DIM; d++)
            xs[d] = uniform((uint64_t)o->seed, g * IN_DIM + (uint64_t)d);
        for (int h = 0; h < TEACHER_HIDDEN; h++) {
            float z = 0;
            for (int d = 0; d < IN_DIM; d++)
                z += tw1[h][d] * xs[d];
            hid[h] = tanhf(z);
        }
        for (int k = 0; k < OUT_DIM; k++) {
            float z = 0;
            for (int h = 0; h < TEACHER_HIDDEN; h++)
                z += tw2[k][h] * hid[h];
            y[(size_t)s * OUT_DIM + (size_t)k] = z;
        }
    }
}

static void model_init(struct model *m, const struct options *o)
{
    m->hidden = o->hidden;
    m->n1 = (size_t)o->hidden * IN_DIM + (size_t)o->hidden;
    m->n2 = (size_t)OUT_DIM * (size_t)o->hidden + OUT_DIM;
    m->p1 = xcalloc(m->n1, sizeof(float));
    m->p2 = xcalloc(m->n2, sizeof(float));
    m->g1 = xcalloc(m->n1, sizeof(float));
    m->g2 = xcalloc(m->n2, sizeof(float));
    /* the same seed on every rank: identical initial weights, no broadcast */
    float s1 = 1.0f / sqrtf((float)IN_DIM), s2 = 1.0f / sqrtf((float)o->hidden);
    for (size_t i = 0; i < (size_t)o->hidden * IN_DIM; i++)
        m->p1[i] = s1 * uniform(3000 + (uint64_t)o->seed, i);
    for (size_t i = 0; i < (size_t)OUT_DIM * (size_t)o->hidden; i++)
        m->p2[i] = s2 * uniform(4000 + (uint64_t)o->seed, i);
}

/* Sums the gradient block g over all ranks, started at once: with Chorus a
 * request, with MPI an MPI_Request (one of them is used). */
struct pending {
    chorus_request_t creq;
    MPI_Request mreq;
};

static void finish_sum(const struct options *o, struct pending *p)
{
    if (o->use_mpi)
        MPI_Wait(&p->mreq, MPI_STATUS_IGNORE);
    else if (p->creq)
        CHECK(chorus_wait(&p->creq));
}

static void start_sum(const struct options *o, float *g, size_t n, struct pending *p)
{
    p->creq = NULL;
    p->mreq = MPI_REQUEST_NULL;
    if (o->use_mpi)
        MPI_Iallreduce(MPI_IN_PLACE, g, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &p->mreq);
    else
        CHECK(chorus_iallreduce(g, g, n, CHORUS_FLOAT32, CHORUS_SUM, comm, &p->creq));
    if (!o->overlap) /* --no-overlap: wait here, before the next layer's backward */
        finish_sum(o, p);
}

/* One SGD step on samples [first, first + b) of the shard; returns the
 * batch's mean loss (0.5 * squared error) on this rank. */
static double train_step(const struct options *o, struct model *m, const float *x,
                         const float *y, int first, int b, float *hid, float *err)
{
    const int H = m->hidden;
    float *W1 = m->p1, *b1 = m->p1 + (size_t)H * IN_DIM;
    float *W2 = m->p2, *b2 = m->p2 + (size_t)OUT_DIM * H;
    float *dW1 = m->g1, *db1 = m->g1 + (size_t)H * IN_DIM;
    float *dW2 = m->g2, *db2 = m->g2 + (size_t)OUT_DIM * H;
    double loss = 0;
    const float inv_b = 1.0f / (float)b;

    /* forward */
    for (int s = 0; s < b; s++) {
        const float *xs = x + (size_t)(first + s) * IN_DIM, *ys = y + (size_t)(first + s) * OUT_DIM;
        float *hs = hid + (size_t)s * H, *es = err + (size_t)s * OUT_DIM;
        for (int h = 0; h < H; h++) {
            float z = b1[h];
            for (int d = 0; d < IN_DIM; d++)
                z += W1[(size_t)h * IN_DIM + d] * xs[d];
            hs[h] = tanhf(z);
        }
        for (int k = 0; k < OUT_DIM; k++) {
            float z = b2[k];
            for (int h = 0; h < H; h++)
                z += W2[(size_t)k * H + h] * hs[h];
            es[k] = z - ys[k];
            loss += 0.5 * (double)es[k] * es[k];
        }
    }

    /* backward, output layer first: its gradient's allreduce starts now and
     * runs while the hidden layer's gradient is computed */
    memset(m->g2, 0, m->n2 * sizeof(float));
    for (int s = 0; s < b; s++)
        for (int k = 0; k < OUT_DIM; k++) {
            float e = err[(size_t)s * OUT_DIM + k] * inv_b;
            for (int h = 0; h < H; h++)
                dW2[(size_t)k * H + h] += e * hid[(size_t)s * H + h];
            db2[k] += e;
        }
    struct pending p2, p1;
    start_sum(o, m->g2, m->n2, &p2);

    /* hidden layer (reads W2, not its gradient, so it does not wait) */
    memset(m->g1, 0, m->n1 * sizeof(float));
    for (int s = 0; s < b; s++) {
        const float *xs = x + (size_t)(first + s) * IN_DIM;
        for (int h = 0; h < H; h++) {
            float dh = 0, hv = hid[(size_t)s * H + h];
            for (int k = 0; k < OUT_DIM; k++)
                dh += W2[(size_t)k * H + h] * err[(size_t)s * OUT_DIM + k];
            float dz = dh * (1 - hv * hv) * inv_b;
            for (int d = 0; d < IN_DIM; d++)
                dW1[(size_t)h * IN_DIM + d] += dz * xs[d];
            db1[h] += dz;
        }
    }
    start_sum(o, m->g1, m->n1, &p1);
    finish_sum(o, &p2);
    finish_sum(o, &p1);

    /* the sum over ranks -> the mean: the same step on every rank */
    const float scale = o->lr / (float)nranks;
    for (size_t i = 0; i < m->n1; i++)
        m->p1[i] -= scale * m->g1[i];
    for (size_t i = 0; i < m->n2; i++)
        m->p2[i] -= scale * m->g2[i];
    return loss / b;
}

static uint64_t checksum(const struct model *m) /* FNV-1a over the weights' bytes */
{
    uint64_t h = 0xcbf29ce484222325ull;
    const unsigned char *blocks[2] = {(const unsigned char *)m->p1, (const unsigned char *)m->p2};
    size_t sizes[2] = {m->n1 * sizeof(float), m->n2 * sizeof(float)};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < sizes[k]; i++)
            h = (h ^ blocks[k][i]) * 0x100000001b3ull;
    return h;
}

static int parse_int(const char *s, int min, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || v < min || v > 1 << 24)
        return -1;
    *out = (int)v;
    return 0;
}

static int parse_options(int argc, char **argv, struct options *o)
{
    *o = (struct options){0, 1, 20, 1024, 32, 64, 1, 0.05f, NULL};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (!strcmp(a, "--mpi")) {
            o->use_mpi = 1;
        } else if (!strcmp(a, "--no-overlap")) {
            o->overlap = 0;
        } else if (!v) {
            bad = 1;
        } else if (!strcmp(a, "--epochs")) {
            bad = parse_int(v, 1, &o->epochs);
            i++;
        } else if (!strcmp(a, "--samples")) {
            bad = parse_int(v, 1, &o->samples);
            i++;
        } else if (!strcmp(a, "--batch")) {
            bad = parse_int(v, 1, &o->batch);
            i++;
        } else if (!strcmp(a, "--hidden")) {
            bad = parse_int(v, 1, &o->hidden);
            i++;
        } else if (!strcmp(a, "--seed")) {
            bad = parse_int(v, 0, &o->seed);
            i++;
        } else if (!strcmp(a, "--lr")) {
            o->lr = strtof(v, NULL);
            bad = !(o->lr > 0);
            i++;
        } else if (!strcmp(a, "--dump")) {
            o->dump = v;
            i++;
        } else {
            bad = 1;
        }
        if (bad) {
            if (rank == 0)
                fprintf(stderr, "usage: %s [--mpi] [--no-overlap] [--epochs N] [--samples N] "
                        "[--batch N] [--hidden N] [--lr X] [--seed N] [--dump FILE]\n", argv[0]);
            return -1;
        }
    }
    if (o->batch > o->samples)
        o->batch = o->samples;
    return 0;
}

static int dump_weights(const char *path, const struct model *m)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        return -1;
    }
    for (size_t i = 0; i < m->n1; i++)
        fprintf(f, "%.9g\n", m->p1[i]);
    for (size_t i = 0; i < m->n2; i++)
        fprintf(f, "%.9g\n", m->p2[i]);
    return fclose(f);
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &nranks);
    struct options o;
    if (parse_options(argc, argv, &o) != 0) {
        MPI_Finalize();
        return 2;
    }
    CHECK(chorus_comm_init_mpi(&comm, MPI_COMM_WORLD));

    float *x = xcalloc((size_t)o.samples * IN_DIM, sizeof(float));
    float *y = xcalloc((size_t)o.samples * OUT_DIM, sizeof(float));
    float *hid = xcalloc((size_t)o.batch * (size_t)o.hidden, sizeof(float));
    float *err = xcalloc((size_t)o.batch * OUT_DIM, sizeof(float));
    make_shard(&o, x, y);
    struct model m;
    model_init(&m, &o);

    const int steps = o.samples / o.batch;
    double step_time = 0;
    for (int epoch = 0; epoch < o.epochs; epoch++) {
        double loss = 0, t0 = MPI_Wtime();
        for (int s = 0; s < steps; s++)
            loss += train_step(&o, &m, x, y, s * o.batch, o.batch, hid, err);
        if (epoch > 0 || o.epochs == 1) /* epoch 0 warms up */
            step_time += MPI_Wtime() - t0;
        double total = 0; /* mean over all ranks, for the printout */
        if (o.use_mpi)
            MPI_Allreduce(&loss, &total, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
        else
            CHECK(chorus_allreduce(&loss, &total, 1, CHORUS_FLOAT64, CHORUS_SUM, comm));
        if (rank == 0)
            printf("epoch %d loss %.6f\n", epoch, total / (steps * nranks));
    }

    /* every rank must hold the same weights: MIN == MAX of the checksum */
    uint64_t sum = checksum(&m), lo, hi;
    if (o.use_mpi) {
        MPI_Allreduce(&sum, &lo, 1, MPI_UINT64_T, MPI_MIN, MPI_COMM_WORLD);
        MPI_Allreduce(&sum, &hi, 1, MPI_UINT64_T, MPI_MAX, MPI_COMM_WORLD);
    } else {
        CHECK(chorus_allreduce(&sum, &lo, 1, CHORUS_UINT64, CHORUS_MIN, comm));
        CHECK(chorus_allreduce(&sum, &hi, 1, CHORUS_UINT64, CHORUS_MAX, comm));
    }
    int ok = lo == hi, rc = ok ? 0 : 1;
    if (rank == 0) {
        int timed = o.epochs > 1 ? o.epochs - 1 : 1;
        printf("%s, %s: %.3f ms per step (%d ranks, %zu parameters)\n",
               o.use_mpi ? "MPI_Iallreduce" : "chorus_iallreduce",
               o.overlap ? "overlapped" : "blocking", 1e3 * step_time / (timed * steps), nranks,
               m.n1 + m.n2);
        if (ok)
            printf("weights identical on all %d ranks (checksum %016llx)\n", nranks,
                   (unsigned long long)sum);
        else
            printf("WEIGHTS DIFFER between ranks (checksums %016llx .. %016llx)\n",
                   (unsigned long long)lo, (unsigned long long)hi);
        if (o.dump && dump_weights(o.dump, &m) != 0)
            rc = 1;
    }
    free(x);
    free(y);
    free(hid);
    free(err);
    free(m.p1);
    free(m.p2);
    free(m.g1);
    free(m.g2);
    CHECK(chorus_comm_destroy(comm));
    MPI_Finalize();
    return rc;
}
