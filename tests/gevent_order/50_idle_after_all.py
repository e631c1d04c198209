# idle() resumes only when the loop has nothing else to do: after A's chain
# of sleep(0)s and after the zero timer's greenlet.
import gevent

def a():
    for i in range(3):
        print("A", i)
        gevent.sleep(0)

gevent.spawn(a)
gevent.spawn_later(0, lambda: print("timer greenlet"))
gevent.idle()
print("main after idle")
