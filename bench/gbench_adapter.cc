// bench/gbench_adapter.cc - registers the C cases of bench/harness.h with
// Google Benchmark and owns their runtimes. The only C++ in the suite.
//
// A case's run() does all of a measurement's iterations in one call (the
// work mostly happens inside a fiber, and entering the runtime once per
// iteration would time weft_run rather than the workload), so the adapter
// hands it the whole batch through KeepRunningBatch(max_iterations).
//
// Runtimes are created once per case: the first time Google Benchmark
// calls into a case (its iteration-count probes included), and destroyed
// when another case starts or the run ends.

#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "harness.h"

namespace {

constexpr unsigned kDefaultWorkers = 2;

unsigned parse_workers() {
    const char *env = std::getenv("WEFT_BENCH_WORKERS");
    if (env == nullptr || *env == '\0')
        return kDefaultWorkers;
    char *end = nullptr;
    unsigned long v = std::strtoul(env, &end, 10);
    if (*end != '\0' || v == 0 || v > WEFT_MAX_WORKERS) {
        std::fprintf(stderr, "weft_bench: ignoring WEFT_BENCH_WORKERS=%s\n", env);
        return kDefaultWorkers;
    }
    return static_cast<unsigned>(v);
}

// Worker count for cases that take the suite default; read once.
unsigned default_workers() {
    static const unsigned workers = parse_workers();
    return workers;
}

// The one live case: its runtime and whatever its setup made.
struct Live {
    const wb_case *c = nullptr;
    int64_t arg = 0;
    wb_ctx ctx{};
};

Live g_live;

void release_live() {
    if (g_live.c == nullptr)
        return;
    if (g_live.c->teardown != nullptr)
        g_live.c->teardown(&g_live.ctx);
    if (g_live.ctx.rt != nullptr) {
        int rc = weft_runtime_destroy(g_live.ctx.rt);
        if (rc != 0)
            std::fprintf(stderr, "weft_bench: weft_runtime_destroy: %s\n", weft_strerror(rc));
    }
    g_live = Live{};
}

// Makes (c, arg) the live case. Returns 0 or a negative errno value, and
// on error leaves no case live.
int acquire_live(const wb_case *c, int64_t arg, std::string *why) {
    if (g_live.c == c && g_live.arg == arg)
        return 0;
    release_live();

    wb_ctx ctx{};
    ctx.arg = arg;
    if (c->workers != WB_NO_RUNTIME) {
        weft_config cfg{};
        if (c->workers == WB_WORKERS_FROM_ARG)
            cfg.workers = static_cast<unsigned>(arg);
        else if (c->workers == 0)
            cfg.workers = default_workers();
        else
            cfg.workers = c->workers;
        int rc = weft_runtime_create(&ctx.rt, &cfg);
        if (rc != 0) {
            *why = std::string("weft_runtime_create: ") + weft_strerror(rc);
            return rc;
        }
        ctx.workers = cfg.workers;
    }
    if (c->setup != nullptr) {
        int rc = c->setup(&ctx);
        if (rc != 0) {
            *why = std::string("setup: ") + weft_strerror(rc);
            if (ctx.rt != nullptr)
                weft_runtime_destroy(ctx.rt);
            return rc;
        }
    }
    g_live.c = c;
    g_live.arg = arg;
    g_live.ctx = ctx;
    return 0;
}

void run_case(benchmark::State &state, const wb_case *c) {
    int64_t arg = c->nargs > 0 ? state.range(0) : 0;
    std::string why;
    if (acquire_live(c, arg, &why) != 0) {
        state.SkipWithError(why.c_str());
        return;
    }
    uint64_t items = 0;
    const auto batch = state.max_iterations;
    g_live.ctx.counter = 0;
    while (state.KeepRunningBatch(batch))
        items += c->run(&g_live.ctx, static_cast<uint64_t>(batch));
    state.SetItemsProcessed(static_cast<int64_t>(items != 0 ? items : batch));
    if (c->counter != nullptr)
        state.counters[c->counter] =
            benchmark::Counter(g_live.ctx.counter, benchmark::Counter::kAvgIterations);
    if (g_live.ctx.workers != 0)
        state.counters["workers"] = g_live.ctx.workers;
}

benchmark::TimeUnit time_unit(wb_unit u) {
    switch (u) {
    case WB_US:
        return benchmark::kMicrosecond;
    case WB_MS:
        return benchmark::kMillisecond;
    case WB_NS:
        break;
    }
    return benchmark::kNanosecond;
}

void register_case(const wb_case *c) {
    auto *b = benchmark::RegisterBenchmark(c->name, run_case, c);
    b->Unit(time_unit(c->unit));
    if (c->real_time)
        b->UseRealTime();
    if (c->arg_name != nullptr)
        b->ArgName(c->arg_name);
    for (size_t i = 0; i < c->nargs; i++)
        b->Arg(c->args[i]);
}

#define WB_SUITE_PTR(w) &wb_suite_##w,
const wb_suite *const kSuites[] = {WB_SUITES(WB_SUITE_PTR)};
#undef WB_SUITE_PTR

} // namespace

int main(int argc, char **argv) {
    for (const wb_suite *s : kSuites)
        for (size_t i = 0; i < s->ncases; i++)
            register_case(&s->cases[i]);

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;
    benchmark::AddCustomContext("weft_default_workers", std::to_string(default_workers()));
    benchmark::RunSpecifiedBenchmarks();
    release_live();
    benchmark::Shutdown();
    return 0;
}
