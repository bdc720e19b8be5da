"""The writer of bench/proxy.sh's rounds: one client on one open TLS connection to the API (as a controller
writes), reading an address a line from stdin and replacing the first address of one EndpointSlice with it by a
merge patch; prints "<sent ms> <answered ms>" (epoch milliseconds, the clock the nftables listener stamps with)
for each. A curl per round cost a process start and a TLS handshake (5-10 ms) that no controller pays.

    python3 bench/patcher.py API_URL PKI_DIR SLICE_PATH   (prints "ready" once connected)
"""
import http.client, json, ssl, sys, time, urllib.parse
api, pki, path = sys.argv[1], sys.argv[2], sys.argv[3]
u = urllib.parse.urlsplit(api)
ctx = ssl.create_default_context(cafile=pki + "/ca.crt")
ctx.load_cert_chain(pki + "/admin.crt", pki + "/admin.key")
c = http.client.HTTPSConnection(u.hostname, u.port, context=ctx)
c.request("GET", path); r = c.getresponse(); r.read()
assert r.status == 200, r.status
print("ready", flush=True)
for line in sys.stdin:
    addr = line.strip()
    body = json.dumps({"endpoints": [{"addresses": [addr]}]})
    t0 = time.time()
    c.request("PATCH", path, body=body, headers={"Content-Type": "application/merge-patch+json"})
    r = c.getresponse(); r.read()
    t1 = time.time()
    assert r.status == 200, r.status
    print("%.3f %.3f" % (t0 * 1000, t1 * 1000), flush=True)
