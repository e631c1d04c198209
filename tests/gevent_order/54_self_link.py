# A greenlet that links itself while running: the link goes behind main's
# join waiter (registered before A ran); main is woken first and the link
# fires in the same entry once main blocks again.
import gevent

def a():
    print("A links itself")
    gevent.getcurrent().link(lambda src: print("link A"))
    print("A end")

ga = gevent.spawn(a)
gevent.spawn(lambda: print("B start"))
ga.join()
print("main joined A")
gevent.sleep(0)
print("main after sleep0")
