# Rule 2: joinall registers its waiter as a link on every greenlet; it
# returns when the last one's links reach that waiter, and main runs before
# the links registered after it on that last greenlet.
import gevent

ga = gevent.spawn(lambda: print("A runs"))
gb = gevent.spawn(lambda: print("B runs"))
ga.link(lambda src: print("link A before"))
gb.link(lambda src: print("link B before"))

def h():
    print("H adds late links")
    ga.link(lambda src: print("link A after"))
    gb.link(lambda src: print("link B after"))

gevent.spawn(h)
gevent.joinall([ga, gb])
print("main after joinall")
gevent.sleep(0)
print("main after sleep0")
