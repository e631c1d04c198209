# Rule 6: a ping-pong of sleep(0)s between two greenlets is never cut by a
# zero timer started before it: the zero spawn_later runs only once both
# ping-pongers block for real.
import gevent

def player(name):
    for i in range(4):
        print(name, i)
        gevent.sleep(0)
    print(name, "blocks")
    gevent.sleep(10)

gevent.spawn_later(0, lambda: print("timer greenlet"))
a = gevent.spawn(player, "A")
b = gevent.spawn(player, "B")
gevent.sleep(0.001)
print("main after sleep")
gevent.killall([a, b])
