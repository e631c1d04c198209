# Rules 2, 3: a link that does a blocking kill of another greenlet: while
# it waits, the rest of G's links fire; the kill's throw takes its place
# in the queue (behind main's resume), then the link resumes, before H's
# own links fire.
import gevent

def killer(src):
    print("link 1 kills H")
    h.kill()
    print("link 1 after kill")

def h_body():
    try:
        gevent.sleep(10)
    finally:
        print("H exits")

h = gevent.spawn(h_body)
h.link(lambda src: print("link H"))
g = gevent.spawn(lambda: print("G runs"))
g.link(killer)
g.link(lambda src: print("link 2"))
for i in (1, 2, 3, 4):
    gevent.sleep(0)
    print("main after sleep0", i)
