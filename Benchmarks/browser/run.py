#!/usr/bin/env python3
"""Browser benchmark (not a test): the Yjs provider in headless Chromium against relayd.

1. Wire cost per hour of one idle editor, and of two editors typing (a keystroke
   plus a cursor awareness update every --type-interval ms), measured on a
   byte-counting TCP proxy between the browsers and relayd (HTTP upgrade
   requests, WebSocket frames and bytes both ways), extrapolated from --window s.
2. Keystroke latency: time from a local insert in browser A to the update
   applied in browser B, over --keys keystrokes on loopback, p50/p99.

Usage: Benchmarks/browser/run.py [--window 120] [--keys 1000] [--type-interval 150] [--latency-interval 30] [--markdown]
HTTP requests per hour do not include the token refreshes to WordPress (one per
0.8 × token TTL: 15/h with 300 s tokens), which do not pass through relayd.
"""
import argparse, asyncio, os, statistics, sys, threading, time

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), '../..'))
sys.path.insert(0, os.path.join(REPO, 'wordpress/relay-realtime/tests/browser'))
import run_browser_tests as rb  # noqa: E402  (page, static server, relayd harness)


class CountingProxy:
    """TCP forwarder on a free port; counts connections and bytes per direction."""

    def __init__(self, target_port):
        self.target = target_port
        self.port = rb.free_port()
        self.reset()
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self._run, daemon=True).start()
        rb.until(lambda: getattr(self, 'server', None) is not None, 5)

    def reset(self):
        self.connections, self.up, self.down = 0, 0, 0

    def _run(self):
        asyncio.set_event_loop(self.loop)

        async def pipe(r, w, attr):
            try:
                while True:
                    b = await r.read(65536)
                    if not b:
                        break
                    setattr(self, attr, getattr(self, attr) + len(b))
                    w.write(b)
                    await w.drain()
            except Exception:
                pass
            finally:
                try:
                    w.close()
                except Exception:
                    pass

        async def handle(cr, cw):
            self.connections += 1
            try:
                sr, sw = await asyncio.open_connection('127.0.0.1', self.target)
            except Exception:
                cw.close()
                return
            await asyncio.gather(pipe(cr, sw, 'up'), pipe(sr, cw, 'down'))

        async def main():
            self.server = await asyncio.start_server(handle, '127.0.0.1', self.port)
            await self.server.serve_forever()
        self.loop.run_until_complete(main())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--window', type=float, default=120, help='seconds measured per cost scenario')
    ap.add_argument('--keys', type=int, default=1000)
    ap.add_argument('--type-interval', type=float, default=150, help='ms between keystrokes of the two typists together (150: 200 keys/min each)')
    ap.add_argument('--latency-interval', type=float, default=30, help='ms between keystrokes in the latency run')
    ap.add_argument('--markdown', action='store_true')
    a = ap.parse_args()

    s = rb.BrowserSuite('test_editors_converge_and_awareness_leaves_with_the_tab')
    rb.BrowserSuite.setUpClass()
    out = {}
    try:
        relay = rb.BrowserSuite.relay
        proxy = CountingProxy(relay.port)
        cfg = s.cfg(url=f'http://127.0.0.1:{proxy.port}')
        per_hour = lambda v: v * 3600.0 / a.window

        # 1. One idle editor.
        frames_of = lambda ds: sum(x['framesIn'] + x['framesOut'] for d in ds for x in d.execute_script('return T.debug()'))
        A = s.browser()
        proxy.reset()
        s.load(A, cfg, '9001', 'Idle')
        time.sleep(1)
        out['setup'] = dict(req=proxy.connections, bytes=proxy.up + proxy.down, frames=frames_of([A]))
        proxy.reset()
        f0 = frames_of([A])
        time.sleep(a.window)
        out['idle'] = dict(req=per_hour(proxy.connections), up=per_hour(proxy.up), down=per_hour(proxy.down),
                           frames=per_hour(frames_of([A]) - f0))
        A.execute_script('T.unload()')

        # 2. Two editors typing.
        cfg2 = dict(cfg)
        A, B = s.browser(), s.browser()
        s.load(A, cfg2, '9002', 'A'), s.load(B, cfg2, '9002', 'B')
        time.sleep(1)
        proxy.reset()
        f0 = frames_of([A, B])
        script = '''const [ms, secs] = arguments; const end = Date.now() + secs * 1000;
          window.__typing = setInterval(() => { if (Date.now() > end) return clearInterval(window.__typing);
            T.append('x'); T.entity.awareness.setLocalStateField('editorState', {selection: {type: 'cursor', offset: T.content().length}}); }, ms);'''
        for d in (A, B):
            d.execute_script(script, a.type_interval * 2, a.window)  # each types at half the rate: together one key per interval
        time.sleep(a.window + 0.5)
        frames = frames_of([A, B]) - f0
        out['typing'] = dict(req=per_hour(proxy.connections), up=per_hour(proxy.up), down=per_hour(proxy.down), frames=per_hour(frames),
                             keys_per_hour=3600.0 * 1000 / a.type_interval)
        rb.until(lambda: A.execute_script('return T.text()') == B.execute_script('return T.text()'), 10)
        out['typing']['converged'] = A.execute_script('return T.text()') == B.execute_script('return T.text()')
        for d in (A, B):
            d.execute_script('T.unload()')

        # 3. Keystroke latency A → B.
        A, B = s.browser(), s.browser()
        s.load(A, cfg, '9003', 'A'), s.load(B, cfg, '9003', 'B')
        B.execute_script('''window.__recv = []; const t = () => T.content();
          t().observe(() => { const now = performance.timeOrigin + performance.now(); while (window.__recv.length < t().length) window.__recv.push(now); });''')
        A.execute_script('''const [n, ms] = arguments; window.__sent = []; let i = 0;
          window.__lat = setInterval(() => { if (i++ >= n) return clearInterval(window.__lat);
            window.__sent.push(performance.timeOrigin + performance.now()); T.append('k'); }, ms);''', a.keys, a.latency_interval)
        rb.until(lambda: B.execute_script('return window.__recv.length') >= a.keys, a.keys * a.latency_interval / 1000 + 30)
        sent, recv = A.execute_script('return window.__sent'), B.execute_script('return window.__recv')
        lat = sorted(r - s_ for s_, r in zip(sent, recv))
        q = lambda p: lat[min(len(lat) - 1, int(round(p / 100.0 * (len(lat) - 1))))]
        out['latency'] = dict(n=len(lat), p50=q(50), p99=q(99), max=lat[-1], mean=statistics.mean(lat))
    finally:
        rb.BrowserSuite.tearDownClass()

    i, t, l = out['idle'], out['typing'], out['latency']
    su = out['setup']
    rows = [
        ('Page load (once): WebSocket upgrade + first sync', f"{su['req']}", f"{su['frames']}", f"{su['bytes'] / 1024:.1f} KiB", '—'),
        ('One idle editor', f"{i['req']:.0f}", f"{i['frames']:.0f}", f"{(i['up'] + i['down']) / 1024:.1f} KiB", '~840 requests (solo, 4 s polling)'),
        (f"Two editors typing ({t['keys_per_hour']:.0f} keys/h in all, cursor awareness per key)", f"{t['req']:.0f}", f"{t['frames']:.0f}",
         f"{(t['up'] + t['down']) / 1024:.1f} KiB", '~6,360 requests (two windows, 1 s polling)'),
    ]
    cmd = f"make bench-browser  # Benchmarks/browser/run.py --window {a.window:g} --keys {a.keys} --type-interval {a.type_interval:g} --latency-interval {a.latency_interval:g}"
    if a.markdown:
        print(f'Command: `{cmd}`\n')
        print('| Scenario (per hour, extrapolated from a %g s window) | HTTP requests | WebSocket frames | Bytes on the wire (both ways) | HTTP polling (wp-rtc-provider.md §10) |' % a.window)
        print('|---|---|---|---|---|')
        for r in rows:
            print('| ' + ' | '.join(r) + ' |')
        print(f"\nKeystroke → applied in the other browser, {l['n']} keystrokes every {a.latency_interval:g} ms on loopback: "
              f"p50 {l['p50']:.1f} ms, p99 {l['p99']:.1f} ms, max {l['max']:.1f} ms (mean {l['mean']:.1f} ms). Converged: {t['converged']}.")
    else:
        print(cmd)
        for r in rows:
            print('  '.join(r))
        print('latency', {k: round(v, 2) for k, v in l.items()})


if __name__ == '__main__':
    main()
