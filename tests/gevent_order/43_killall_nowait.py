# killall(block=False): main keeps running; the throws happen in one later
# callback, behind E's start, which was queued before killall.
import gevent

def sleeper(name):
    try:
        gevent.sleep(10)
    finally:
        print(name, "exits")

a = gevent.spawn(sleeper, "A")
b = gevent.spawn(sleeper, "B")
gevent.sleep(0)
gevent.spawn(lambda: print("E start"))
gevent.killall([a, b], block=False)
print("main after killall")
gevent.joinall([a, b])
print("main joined")
