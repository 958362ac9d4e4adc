#!/usr/bin/env python3
"""Chart and markdown summary of a `relayctl bench soak` run (Benchmarks/soak/run.sh).

Inputs: the generator's JSON result, its per-second CSV, and env.txt (machine, versions, commands).
Outputs: a PNG (relayd RSS and open fds, delivery p99 per second, connections and connects/s, CPU)
and a markdown section for Docs/benchmarks.md.
"""
import argparse
import csv
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load_csv(path):
    rows = []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            rows.append(r)
    return rows


def col(rows, name, cast=float):
    out = []
    for r in rows:
        v = r.get(name, "")
        out.append(cast(v) if v not in ("", None) else None)
    return out


def phase_spans(rows):
    """[(phase, t_start, t_end)] of consecutive samples with one phase."""
    spans = []
    for r in rows:
        t, p = float(r["t_s"]), r["phase"]
        if spans and spans[-1][0] == p:
            spans[-1][2] = t
        else:
            spans.append([p, t - 1, t])
    return spans


PHASE_COLORS = {"warmup": "#fde8c8", "soak": "#d8ecd8", "settle": "#e4e4f4", "settle-warmup": "#e4e4f4"}


def shade(ax, spans):
    for p, a, b in spans:
        c = PHASE_COLORS.get(p)
        if c:
            ax.axvspan(a, b, color=c, alpha=0.6, lw=0)


def chart(rows, result, png):
    t = col(rows, "t_s")
    rss, fds = col(rows, "relayd_rss_mib"), col(rows, "relayd_fds")
    p99, yp99 = col(rows, "p99_ms"), col(rows, "yjs_p99_ms")
    deliveries = col(rows, "deliveries")
    openws, conns = col(rows, "open_ws"), col(rows, "relayd_connections")
    connects = col(rows, "connects")
    cpu, gcpu = col(rows, "relayd_cpu_pct"), col(rows, "gen_cpu_pct")
    threads = col(rows, "relayd_threads")
    spans = phase_spans(rows)

    fig, axes = plt.subplots(4, 1, figsize=(12, 13), sharex=True)
    ax = axes[0]
    shade(ax, spans)
    ax.plot(t, rss, color="tab:blue", lw=1.2, label="relayd RSS (MiB)")
    ax.set_ylabel("RSS MiB", color="tab:blue")
    b = result.get("resources", {}).get("baseline", {}).get("rss_mib")
    allow = result.get("rss_allowance_mib")
    if b is not None and allow is not None:
        ax.axhline(b, color="tab:blue", ls=":", lw=1)
        ax.axhline(b + allow, color="tab:red", ls="--", lw=1, label=f"rule: baseline + {allow:.0f} MiB")
    ax2 = ax.twinx()
    ax2.plot(t, fds, color="tab:orange", lw=1.0, label="relayd open fds")
    ax2.set_ylabel("open fds", color="tab:orange")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    th = [x for x in threads if x is not None]
    res = result.get("resources", {})
    ax.set_title("relayd RSS and open fds; threads: baseline {}, peak {}, after {}".format(
        res.get("baseline", {}).get("threads"), int(max(th)) if th else None, res.get("after", {}).get("threads")))

    ax = axes[1]
    shade(ax, spans)
    ax.plot(t, [v if (d or 0) > 0 else None for v, d in zip(p99, deliveries)], color="tab:green", lw=1.0, label="publication p99 per second (ms)")
    ax.plot(t, [v if v else None for v in yp99], color="tab:purple", lw=0.8, alpha=0.8, label="Yjs update p99 per second (ms)")
    ax.set_yscale("log")
    ax.set_ylabel("ms (log)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("delivery latency, publish instant → subscriber, p99 of each second")

    ax = axes[2]
    shade(ax, spans)
    ax.plot(t, openws, color="tab:blue", lw=1.0, label="/ws connections open (generator)")
    ax.plot(t, conns, color="tab:cyan", lw=0.8, ls="--", label="active connections (relayd /healthz)")
    ax.set_ylabel("connections")
    ax2 = ax.twinx()
    ax2.plot(t, connects, color="tab:red", lw=0.6, alpha=0.7, label="connects per second")
    ax2.set_ylabel("connects/s", color="tab:red")
    lim = sorted(x for x in connects if x is not None)
    if lim:
        ax2.set_ylim(0, max(10, lim[int(len(lim) * 0.98)] * 1.5))
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=8)
    ax.set_title("connections and churn")

    ax = axes[3]
    shade(ax, spans)
    ax.plot(t, cpu, color="tab:blue", lw=0.8, label="relayd CPU %")
    ax.plot(t, gcpu, color="tab:gray", lw=0.8, label="load generator CPU %")
    ax.set_ylabel("% of one core")
    ax.set_xlabel("seconds (shaded: orange warm-up load, green measured load, violet settle)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title("CPU (2 cores = 200 %)")
    verdict = "PASS" if result.get("passed") else "FAIL"
    fig.suptitle(f"relayd soak — {verdict}", fontsize=13)
    fig.tight_layout()
    fig.savefig(png, dpi=90)


def fmt(n):
    return f"{n:,}" if isinstance(n, int) else str(n)


def rss_slope(rows):
    pts = [(float(r["t_s"]), float(r["relayd_rss_mib"])) for r in rows if r["phase"] == "soak" and r["relayd_rss_mib"]]
    pts = pts[len(pts) // 2:]
    if len(pts) < 10:
        return None
    n = len(pts)
    mx = sum(p[0] for p in pts) / n
    my = sum(p[1] for p in pts) / n
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    return 60 * sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx if sxx else None


def first_rss(rows):
    for r in rows:
        if r["phase"] == "soak" and r["relayd_rss_mib"]:
            return float(r["relayd_rss_mib"])
    return 0.0


def markdown(result, env, png_rel, rows):
    c = result["config"]
    soak = [x for x in result["cycles"] if x["label"] == "soak"][0]
    warm = [x for x in result["cycles"] if x["label"] == "warmup"]
    res = result["resources"]
    a, pub, pr, yj = soak["accounting"], soak["publishes"], soak["presence"], soak["yjs"]
    lat, ylat = soak["latency"], soak["yjs_latency"]
    ps = result["per_second_p99_ms"]
    load = [r for r in rows if r["phase"] == "soak"]
    secs = max(1.0, soak["load_s"])
    out = []
    out.append("## Soak (issue 15)")
    out.append("")
    out.append("![relayd soak: RSS, fds, p99, connections, CPU](images/soak.png)")
    out.append("")
    for line in env:
        out.append(f"- {line}")
    out.append("")
    verdict = "**PASS**" if result["passed"] else "**FAIL**"
    out.append(f"Verdict: {verdict}." + ("" if result["passed"] else " " + "; ".join(result["problems"])))
    out.append("")
    out.append("| | measured cycle |")
    out.append("|---|---|")
    out.append(f"| load | {soak['load_s']:.0f} s after a {c['warmup_s']:.0f} s warm-up cycle and {c['settle_s']:.0f} s idle |")
    out.append(f"| `/ws` connections held | {soak['held']:,} subscribers (of which {c['presence_channels'] * c['watchers_per_presence_channel']} presence watchers) + {soak['churn_population']:,} churning + {soak['client_publishers']} client publishers ≈ {c['connections']:,} open |")
    cps, clps = result["connects_per_s_during_load"], result["closes_per_s_during_load"]
    out.append(f"| churn | {soak['churn_connects']:,} churned connects and {soak['churn_closes']:,} closes in the cycle; during the load {cps['mean']:.0f} connects/s (min {cps['min']}, max {cps['max']}) and {clps['mean']:.0f} closes/s (min {clps['min']}, max {clps['max']}) (target {c['churn_rate']:.0f}/s, life {c['churn_lifetime_s'] * 0.5:.0f}–{c['churn_lifetime_s'] * 1.5:.0f} s); each subscribes to a data channel, {c['presence_share'] * 100:.0f}% also enter presence; leave by unsubscribe + close (50%), close frame (35%) or dropped TCP (15%) |")
    out.append(f"| publishes | {pub['http_accepted']:,} signed `POST /publish` accepted ({pub['http_accepted'] / secs:.0f}/s, {pub['http_failed']} failed) on {c['data_channels'] - c['client_channels']} channels; {pub['client_sent']:,} client publishes ({pub['client_sent'] / secs:.0f}/s, {pub['client_unacknowledged']} not echoed) on {c['client_channels']} channels; {c['payload_bytes']} B payloads |")
    out.append(f"| deliveries checked | {a['subscription_windows']:,} subscription windows; expected {a['expected']:,}, delivered {a['delivered_expected']:,}, **lost {a['lost']}, duplicated {a['duplicates']}, out of order {a['out_of_order']}** (+{a['boundary']:,} deliveries in flight around a subscribe/leave, allowed) |")
    out.append(f"| presence | {c['presence_channels']} channels; {pr['acknowledged_joins']:,} joins seen by their own connection; watchers missed {pr['missing_joins']} joins and {pr['missing_leaves']} leaves; {pr['leaked_members']} members left over; {pr['watcher_events']:,} events at watchers |")
    out.append(f"| Yjs | {c['yjs_rooms']} rooms × {c['yjs_editors_per_room']} editors at {c['yjs_update_rate']:.0f} updates/s each: {yj['updates_sent']:,} updates, {yj['expected']:,} expected deliveries, **lost {yj['lost']}, duplicated {yj['duplicates']}, out of order {yj['out_of_order']}**; {yj['joins']:,} late joins fetched the document ({yj['join_failures']} failed) |")
    out.append(f"| connection errors | {soak['connect_failures']} failed connects, unexpected closes {soak['unexpected_closes'] or 'none'}, {soak['error_frames']} error frames |")
    out.append(f"| publication latency | p50 {lat['p50_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, p99.9 {lat['p999_ms']:.1f} ms, max {lat['max_ms']:.1f} ms over {lat['count']:,} deliveries; p99 per second: median {ps['median']:.2f} ms, 95th percentile of seconds {ps['p95_of_seconds']:.1f} ms, worst {ps['max']:.1f} ms |")
    out.append(f"| Yjs latency | p50 {ylat['p50_ms']:.2f} ms, p99 {ylat['p99_ms']:.2f} ms, max {ylat['max_ms']:.1f} ms |")
    if "relayd_cpu_pct_mean_during_load" in result:
        out.append(f"| CPU during load | relayd {result['relayd_cpu_pct_mean_during_load']:.0f}% of a core, generator {result.get('generator_cpu_pct_mean_during_load', 0):.0f}%, load average {result.get('load1_mean_during_load', 0):.2f} |")
    out.append("")
    out.append("| relayd | fresh | baseline (after warm-up + settle) | peak (measured cycle) | after (settle) |")
    out.append("|---|---:|---:|---:|---:|")

    def v(d, k, f="{}"):
        x = d.get(k)
        return f.format(x) if x is not None else "n/a"
    for k, name, f in (("rss_mib", "RSS MiB", "{:.1f}"), ("fds", "open fds", "{}"), ("threads", "threads", "{}"),
                       ("relayd_connections", "active connections (/healthz)", "{:,}"), ("relayd_channels", "channels (/healthz)", "{:,}")):
        out.append(f"| {name} | {v(res['fresh'], k, f)} | {v(res['baseline'], k, f)} | {v(res['peak'], k, f)} | {v(res['after'], k, f)} |")
    out.append("")
    out.append(f"Rule (checked by the generator, exit 1 when broken): {result['rule']}; and no loss, duplicate, "
               "out-of-order or misrouted delivery, no failed publish, no missed presence join/leave, no Yjs update "
               "lost, no failed connect and no connection closed by relayd, in both cycles. "
               f"RSS allowance this run: {result.get('rss_allowance_mib') or 0:.0f} MiB"
               + (f" — {result['rss_allowance_mib'] * 1048576 / max(1, soak['churn_connects']):.0f} B per churned connection, or "
                  f"{result['rss_allowance_mib'] * 1048576 / max(1, soak['deliveries']):.1f} B per delivery of the cycle, would break it."
                  if result.get("rss_allowance_mib") else "."))
    slope = rss_slope(rows)
    if slope is not None:
        out.append("")
        out.append(f"RSS trend over the second half of the measured load (least squares): {slope:+.2f} MiB/min "
                   f"(first half of the load starts at {first_rss(rows):.1f} MiB, peak {res['peak'].get('rss_mib') or 0:.1f} MiB).")
    if warm:
        w = warm[0]
        out.append("")
        out.append(f"Warm-up cycle ({w['load_s']:.0f} s, same load): expected {w['accounting']['expected']:,}, lost {w['accounting']['lost']}, "
                   f"duplicated {w['accounting']['duplicates']}; Yjs lost {w['yjs']['lost']}; problems: {'; '.join(w['problems']) or 'none'}.")
    return "\n".join(out) + "\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--json", required=True)
    ap.add_argument("--csv", required=True)
    ap.add_argument("--env")
    ap.add_argument("--png", required=True)
    ap.add_argument("--markdown", required=True)
    ap.add_argument("--exit-code", type=int, default=0)
    a = ap.parse_args()
    result = json.load(open(a.json))
    rows = load_csv(a.csv)
    env = [line.strip() for line in open(a.env)] if a.env else []
    if a.exit_code not in (0, 1):
        env.append(f"exit code {a.exit_code}")
    chart(rows, result, a.png)
    open(a.markdown, "w").write(markdown(result, env, a.png, rows))


if __name__ == "__main__":
    main()
