# Rule 2: iwait hands greenlets back in the order their links entries ran
# (finish order), not in the order they were passed; the consumer runs in
# between, at its place among each greenlet's links.
import gevent

def worker(name, hops):
    for _ in range(hops):
        gevent.sleep(0)
    print(name, "end")

gs = [gevent.spawn(worker, "A", 2), gevent.spawn(worker, "B", 0),
      gevent.spawn(worker, "C", 1)]
for g in gs:
    g.link(lambda src: print("link", ["A", "B", "C"][gs.index(src)]))
for g in gevent.iwait(gs):
    print("main got", ["A", "B", "C"][gs.index(g)])
print("main done")
