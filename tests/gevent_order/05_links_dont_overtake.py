# Rule 1: a greenlet's links are queued when it finishes, behind the
# entries that were queued already: B's start and main's resume were
# queued before A finished, so both run before A's link fires.
import gevent

def a():
    print("A start")
    print("A end")

a_g = gevent.spawn(a)
a_g.link(lambda src: print("link A"))
gevent.spawn(lambda: print("B start"))
gevent.sleep(0)
print("main after sleep0")
gevent.sleep(0)
print("main after second sleep0")
