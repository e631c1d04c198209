# Rule 1: one links entry per finished greenlet, in the order the
# greenlets finished (B finishes before A here although A was spawned
# first); within an entry links run in registration order.
import gevent

def a():
    print("A start")
    gevent.sleep(0)
    print("A end")

def b():
    print("B end")

ga = gevent.spawn(a)
gb = gevent.spawn(b)
ga.link(lambda src: print("link A 1"))
gb.link(lambda src: print("link B 1"))
ga.link(lambda src: print("link A 2"))
gb.link(lambda src: print("link B 2"))
gevent.joinall([ga, gb])
print("main after joinall")
