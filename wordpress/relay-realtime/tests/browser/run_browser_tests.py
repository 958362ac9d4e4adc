#!/usr/bin/env python3
"""Chromium suite: the provider and the client in headless Chromium (Debian chromium +
chromium-driver through Selenium) against relayd, pages served from loopback, Yjs loaded
from /usr/share/nodejs through an import map. Usage: run_browser_tests.py [-v]"""
import base64, glob, hashlib, hmac, http.server, json, os, re, shutil, socket, subprocess, sys
import tempfile, threading, time, unittest, urllib.request
from functools import partial

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, '../../../..'))
JS = os.path.abspath(os.path.join(HERE, '../../assets/js'))
NODEJS = '/usr/share/nodejs'
RELAYD = os.environ.get('RELAYD_BIN') or os.path.join(REPO, '.build/debug/relayd')
RELAYCTL = os.environ.get('RELAYCTL_BIN') or os.path.join(REPO, '.build/debug/relayctl')

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def until(pred, timeout=10.0, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        try:
            v = pred()
            if v:
                return v
        except Exception:
            pass
        time.sleep(step)
    return pred()


def import_map():
    imports = {'yjs': '/nodejs/yjs/dist/yjs.mjs', 'isomorphic.js': '/nodejs/isomorphic.js/browser.mjs',
               'y-protocols/awareness': '/nodejs/y-protocols/awareness.js', 'y-protocols/sync': '/nodejs/y-protocols/sync.js',
               'y-protocols/auth': '/nodejs/y-protocols/auth.js', 'y-websocket': '/nodejs/y-websocket/src/y-websocket.js'}
    for f in glob.glob(os.path.join(NODEJS, 'lib0', '*.js')):
        name = os.path.basename(f)[:-3]
        if not name.endswith('.test'):
            imports[f'lib0/{name}'] = f'/nodejs/lib0/{name}.js'
            imports[f'lib0/{name}.js'] = f'/nodejs/lib0/{name}.js'
    return json.dumps({'imports': imports})


PAGE = '''<!doctype html><meta charset="utf-8"><title>relay test</title>
<script type="importmap">%s</script>
<script type="module" src="/page/page.js"></script>'''


class StaticHandler(http.server.SimpleHTTPRequestHandler):
    """Read-only: /nodejs/ → /usr/share/nodejs, /js/ → assets/js, /page/ → this folder, / → the page."""
    roots = {'/nodejs/': NODEJS, '/js/': JS, '/page/': HERE}

    def translate_path(self, path):
        path = path.split('?', 1)[0]
        for prefix, root in self.roots.items():
            if path.startswith(prefix):
                full = os.path.realpath(os.path.join(root, path[len(prefix):]))
                return full if full.startswith(os.path.realpath(root)) else '/nonexistent'
        return '/nonexistent'

    def do_GET(self):
        if self.path.split('?')[0] in ('/', '/index.html'):
            body = (PAGE % import_map()).encode()
            self.send_response(200)
            self.send_header('Content-Type', 'text/html; charset=utf-8')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        return super().do_GET()

    def guess_type(self, path):
        return 'text/javascript' if path.endswith(('.js', '.mjs')) else super().guess_type(path)

    def log_message(self, *a):
        pass


class Relay:
    def __init__(self, cors):
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix='relay-browser-')
        self.cors = cors
        self.proc = None
        self.site = None
        self.start()

    @property
    def url(self):
        return f'http://127.0.0.1:{self.port}'

    def start(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith('RELAY_')}
        with open(os.path.join(self.dir, 'relayd.out'), 'ab') as log:
            self.proc = subprocess.Popen([RELAYD, '--port', str(self.port), '--data-dir', self.dir, '--log-level', 'warning',
                                          '--cors-origin', self.cors], stdout=log, stderr=subprocess.STDOUT, env=env)

        def healthy():
            with urllib.request.urlopen(f'{self.url}/healthz', timeout=1) as r:
                return r.status == 200
        if not until(healthy, 15):
            raise RuntimeError('relayd did not start')
        if not self.site:
            with open(os.path.join(self.dir, 'relayd.out')) as fh:
                out = fh.read()
            f = lambda n: re.search(n + r':\s+(\S+)', out).group(1)
            self.site = dict(site_key=f('site_key'), site_id=f('site_id'), publish_secret=f('publish_secret'), jwt_secret=f('jwt_secret'))

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def close(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def token(self, ttl=300, write=True, user='1'):
        sid = self.site['site_id']
        now = int(time.time())
        claims = dict(site_id=sid, user_id=user, v=2, iat=now, exp=now + ttl, allowed_channel_prefixes=[f'site:{sid}:'],
                      allowed_publish_prefixes=[f'site:{sid}:'] if write else [f'site:{sid}:none:'])
        b = lambda d: base64.urlsafe_b64encode(d).rstrip(b'=').decode()
        h, p = b(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode()), b(json.dumps(claims).encode())
        sig = b(hmac.new(self.site['jwt_secret'].encode(), f'{h}.{p}'.encode(), hashlib.sha256).digest())
        return {'token': f'{h}.{p}.{sig}', 'exp': claims['exp']}

    def publish(self, channel, event, data, *extra):
        subprocess.run([RELAYCTL, 'publish', '--url', self.url, '--site-key', self.site['site_key'], '--secret', self.site['publish_secret'],
                        *extra, channel, event, json.dumps(data)], check=True, timeout=10, capture_output=True)


class BrowserSuite(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), StaticHandler)
        threading.Thread(target=cls.httpd.serve_forever, daemon=True).start()
        cls.page = f'http://127.0.0.1:{cls.httpd.server_address[1]}/'
        cls.relay = Relay(cors=cls.page.rstrip('/'))
        cls.drivers = []
        cls.key = base64.b64encode(os.urandom(32)).decode()

    @classmethod
    def tearDownClass(cls):
        for d in cls.drivers:
            try:
                d.quit()
            except Exception:
                pass
        cls.relay.close()
        cls.httpd.shutdown()
        cls.httpd.server_close()

    def tearDown(self):
        for d in self.drivers:
            try:
                d.quit()
            except Exception:
                pass
        self.drivers.clear()

    def browser(self):
        o = Options()
        for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run',
                  '--disable-background-timer-throttling', '--disable-renderer-backgrounding', '--user-data-dir=' + tempfile.mkdtemp(prefix='chromium-')):
            o.add_argument(a)
        o.binary_location = shutil.which('chromium') or '/usr/bin/chromium'
        d = webdriver.Chrome(options=o, service=Service(shutil.which('chromedriver') or '/usr/bin/chromedriver'))
        d.set_script_timeout(20)
        self.drivers.append(d)
        d.get(self.page)
        self.assertTrue(until(lambda: d.execute_script('return window.TReady === true'), 15), 'page modules loaded')
        return d

    def cfg(self, **extra):
        t = self.relay.token()
        c = dict(url=self.relay.url, siteId=self.relay.site['site_id'], token=t['token'], exp=t['exp'],
                 payloadKeys={'v1': self.key, 'k1': self.key}, yjs={'enabled': True, 'retryBaseMs': 200, 'retryMaxMs': 1000})
        c.update(extra)
        return c

    def load(self, d, cfg, oid, name):
        return d.execute_async_script('const [c, o, n, done] = arguments; T.load(c, "postType/post", o, {id: 1, name: n}).then(done, (e) => done("REJECTED " + e))', cfg, oid, name)

    def test_editors_converge_and_awareness_leaves_with_the_tab(self):
        cfg = self.cfg()
        a, b = self.browser(), self.browser()
        sa, sb = self.load(a, cfg, '101', 'Alice'), self.load(b, cfg, '101', 'Bob')
        self.assertEqual(sa[-1], 'connected')
        self.assertEqual(sb[-1], 'connected')
        a.execute_script('T.insert(0, "Héllo 😀")')
        self.assertTrue(until(lambda: b.execute_script('return T.text()') == 'Héllo 😀'))
        b.execute_script('T.append(" 👩‍👩‍👧 wörld"); T.set("title", "Zwei"); T.set("status", "draft")')
        a.execute_script('T.set("slug", "two")')
        want = 'Héllo 😀 👩‍👩‍👧 wörld'
        self.assertTrue(until(lambda: a.execute_script('return T.text()') == want and b.execute_script('return T.doc().slug') == 'two'))
        self.assertEqual(a.execute_script('return T.doc()'), b.execute_script('return T.doc()'))
        self.assertTrue(until(lambda: a.execute_script('return T.peers()') == ['Bob']), 'A sees Bob')
        self.assertTrue(until(lambda: b.execute_script('return T.peers()') == ['Alice']))
        b.quit()
        self.drivers.remove(b)
        self.assertTrue(until(lambda: a.execute_script('return T.peers()') == [], 10), 'Bob left with his tab')
        # A late joiner in a fresh browser gets the document from relayd.
        a.execute_script('T.unload()')
        c = self.browser()
        self.load(c, cfg, '101', 'Carol')
        self.assertEqual(c.execute_script('return T.text()'), want)

    def test_encrypted_room_editors_converge_and_relayd_holds_only_ciphertext(self):
        key = base64.urlsafe_b64encode(os.urandom(32)).rstrip(b'=').decode()
        room = 'postType/post:202'
        cfg = self.cfg(e2e={'site': self.relay.site['site_id'], 'keys': {room: [{'kid': 'k1', 'key': key}]}})
        a, b = self.browser(), self.browser()
        self.assertEqual(self.load(a, cfg, '202', 'Alice')[-1], 'connected')
        self.assertEqual(self.load(b, cfg, '202', 'Bob')[-1], 'connected')
        self.assertTrue(a.execute_script('return T.debug()[0].encrypted'), 'the provider chose the encrypted mode')
        secret = 'Verschlüsselt-' + os.urandom(4).hex()
        a.execute_script('T.insert(0, arguments[0])', secret)
        self.assertTrue(until(lambda: b.execute_script('return T.text()') == secret), 'B opened A\'s sealed update')
        b.execute_script('T.append(" 🔐 ok")')
        want = secret + ' 🔐 ok'
        self.assertTrue(until(lambda: a.execute_script('return T.text()') == want))
        self.assertTrue(until(lambda: a.execute_script('return T.peers()') == ['Bob']), 'sealed awareness crosses')
        a.execute_script('T.unload()')
        b.execute_script('T.unload()')
        c = self.browser()
        self.load(c, cfg, '202', 'Carol')
        self.assertTrue(until(lambda: c.execute_script('return T.text()') == want), 'a late joiner opens the log')
        self.assertEqual(c.execute_script('return T.debug()[0].rejected'), {'tampered': 0, 'replayed': 0, 'unknown-key': 0, 'malformed': 0})
        stored = b''
        for f in ('yjs.sqlite', 'yjs.sqlite-wal'):
            path = os.path.join(self.relay.dir, f)
            if os.path.exists(path):
                with open(path, 'rb') as fh:
                    stored += fh.read()
        self.assertGreater(len(stored), 0)
        self.assertNotIn(secret.encode(), stored, 'plaintext in relayd\'s yjs.sqlite')
        # Without the key, the same room is authentication-failed, not garbage.
        d = self.browser()
        nokey = self.cfg(e2e={'site': self.relay.site['site_id'], 'keys': {}, 'objectTypes': ['postType/post']})
        self.assertEqual(self.load(d, nokey, '202', 'Dave')[-1], 'disconnected:authentication-failed')

    def test_stock_y_websocket_in_the_page_expired_and_read_only_tokens(self):
        cfg = self.cfg()
        a, s = self.browser(), self.browser()
        self.load(a, cfg, '303', 'A')
        a.execute_script('T.insert(0, "shared 🧪")')
        room = 'postType/post:303'
        ok = s.execute_async_script('const [u, r, t, done] = arguments; T.stock(u, r, t).then(done, (e) => done(String(e)))',
                                    self.relay.url.replace('http', 'ws') + '/yjs', room, self.relay.token(user='7')['token'])
        self.assertTrue(ok, 'stock y-websocket synced')
        self.assertTrue(until(lambda: s.execute_script('return T.stockText()') == 'shared 🧪'))
        s.execute_script('T.stockInsert(" + stock")')
        self.assertTrue(until(lambda: a.execute_script('return T.text()') == 'shared 🧪 + stock'))
        self.assertTrue(until(lambda: 'A' in s.execute_script('return T.stockPeers()')), 'stock client sees the provider\'s awareness')
        # Expired token → connection-expired, no retry.
        e = self.browser()
        expired = self.relay.token(ttl=-60)
        st = self.load(e, dict(cfg, token=expired['token'], exp=expired['exp']), '303', 'E')
        self.assertEqual(st[-1], 'disconnected:connection-expired')
        self.assertIsNone(e.execute_script('return T.entity.providers[0].provider.status.willAutoRetryInMs ?? null'))
        # Read-only token: gets the document, cannot change it.
        r = self.browser()
        ro = self.relay.token(write=False, user='8')
        self.load(r, dict(cfg, token=ro['token'], exp=ro['exp']), '303', 'R')
        self.assertEqual(r.execute_script('return T.text()'), 'shared 🧪 + stock')
        r.execute_script('T.insert(0, "HACK ")')
        self.assertTrue(until(lambda: r.execute_script('return T.entity.providers[0].provider.readOnly'), 5))
        a.execute_script('T.append("!")')
        self.assertTrue(until(lambda: r.execute_script('return T.text()').endswith('stock!')))
        time.sleep(0.3)
        self.assertEqual(a.execute_script('return T.text()'), 'shared 🧪 + stock!')
        self.assertEqual(s.execute_script('return T.stockText()'), 'shared 🧪 + stock!')

    def test_client_sealed_publish_sse_fallback_and_recovery(self):
        sid = self.relay.site['site_id']
        ch = f'site:{sid}:posts'
        names = ['post.updated', 'n', 'connection.error', 'connection.gap']
        # WebSocket: sealed v2 publish → relay:post.updated CustomEvent on document.
        ws = self.browser()
        ws.execute_script('T.startClient(arguments[0], arguments[1])', self.cfg(channels=[ch]), names)
        self.assertTrue(until(lambda: ws.execute_script('return T.clientState().positions[arguments[0]] !== undefined', ch)))
        self.assertEqual(ws.execute_script('return T.clientState().transport'), 'ws')
        self.relay.publish('posts', 'post.updated', {'id': 7, 't': 'sealed ✓'}, '--seal', '--payload-key', self.key, '--envelope', 'v2')
        self.assertTrue(until(lambda: ws.execute_script('return T.events.length') == 1))
        ev = ws.execute_script('return T.events[0]')
        self.assertEqual((ev['name'], ev['channel'], ev['data'], ev['isCustom']), ('post.updated', ch, {'id': 7, 't': 'sealed ✓'}, True))
        # Recovery: messages published while the client is away are replayed on reconnect, in order.
        ws.execute_script('T.client.disconnect()')
        for i in range(1, 4):
            self.relay.publish('posts', 'n', {'i': i})
        ws.execute_script('T.client.connect()')
        self.assertTrue(until(lambda: ws.execute_script('return T.events.filter((e) => e.name === "n").map((e) => e.data.i)') == [1, 2, 3]))
        self.assertEqual(ws.execute_script('return T.events.filter((e) => e.name === "connection.gap").length'), 0)
        # SSE fallback: the WebSocket endpoint is unreachable (nothing listens there).
        dead = free_port()
        sse = self.browser()
        sse.execute_script('T.startClient(arguments[0], arguments[1])',
                           self.cfg(channels=[ch], wsUrl=f'ws://127.0.0.1:{dead}/ws', timing={'wsProbeMs': 1000}), names)
        self.assertTrue(until(lambda: sse.execute_script('return T.clientState().transport') == 'sse' and sse.execute_script('return T.clientState().connected'), 10))
        time.sleep(0.3)
        self.relay.publish('posts', 'post.updated', {'id': 8}, '--seal', '--payload-key', self.key, '--envelope', 'v1')
        self.assertTrue(until(lambda: sse.execute_script('return T.events.filter((e) => e.name === "post.updated").map((e) => e.data.id)') == [8], 10))
        time.sleep(2.5)  # WS probes keep failing; SSE stays
        self.assertEqual(sse.execute_script('return T.clientState().transport'), 'sse')
        # SSE reconnect after a relay restart: new epoch → gap reported; stream resumes.
        self.relay.stop()
        self.relay.start()
        self.assertTrue(until(lambda: sse.execute_script('return T.events.some((e) => e.name === "connection.gap" && e.channel === arguments[0])', ch), 20), 'SSE: gap after restart')
        self.assertTrue(until(lambda: ws.execute_script('return T.events.some((e) => e.name === "connection.gap" && e.channel === arguments[0])', ch), 20), 'WS: gap after restart')
        self.assertTrue(until(lambda: sse.execute_script('return T.clientState().connected'), 10))
        self.relay.publish('posts', 'post.updated', {'id': 9}, '--seal', '--payload-key', self.key, '--envelope', 'v1')
        self.assertTrue(until(lambda: sse.execute_script('return T.events.filter((e) => e.name === "post.updated").map((e) => e.data.id)') == [8, 9], 10), 'SSE resumed')
        self.assertTrue(until(lambda: ws.execute_script('return T.clientState().connected'), 10))
        self.relay.publish('posts', 'n', {'i': 4})
        self.assertTrue(until(lambda: ws.execute_script('return T.events.filter((e) => e.name === "n").length') == 4, 10))

    def test_provider_reconnects_after_relay_restart_without_losing_edits(self):
        cfg = self.cfg()
        a, b = self.browser(), self.browser()
        self.load(a, cfg, '202', 'A'); self.load(b, cfg, '202', 'B')
        a.execute_script('T.insert(0, "one;")')
        self.assertTrue(until(lambda: b.execute_script('return T.text()') == 'one;'))
        self.relay.stop()
        self.assertTrue(until(lambda: a.execute_script('return T.statuses.at(-1)') == 'disconnected', 5))
        a.execute_script('T.append("offline-a;")')
        b.execute_script('T.insert(0, "offline-b;")')
        self.relay.start()
        self.assertTrue(until(lambda: a.execute_script('return T.statuses.at(-1)') == 'connected' and b.execute_script('return T.statuses.at(-1)') == 'connected', 15))
        seq = a.execute_script('return T.statuses')
        i = seq.index('disconnected')
        self.assertIn('connecting', seq[i:])
        self.assertTrue(until(lambda: a.execute_script('return T.text()') == b.execute_script('return T.text()') and 'offline-a;' in a.execute_script('return T.text()') and 'offline-b;' in a.execute_script('return T.text()'), 10))


if __name__ == '__main__':
    unittest.main(verbosity=2 if '-v' in sys.argv else 1, argv=[sys.argv[0]])
