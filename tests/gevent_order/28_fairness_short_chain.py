# Rule 7: a pass is only cut short after 50 callbacks AND 5 ms; 100 quick
# starts queued behind a zero timer all run, in spawn order, before it.
import gevent

order = []
gevent.spawn_later(0, lambda: print("timer greenlet, starts seen:", len(order)))
for i in range(100):
    gevent.spawn(order.append, i)
gevent.sleep(0.001)
print("starts in spawn order:", order == list(range(100)))
