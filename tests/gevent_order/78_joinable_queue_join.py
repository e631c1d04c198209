# Needs JoinableQueue. Rule 8: join() on a queue with no unfinished tasks
# returns True at once without switching. Each put() counts a task; join()
# blocks until task_done() brings the count to 0. That last task_done()
# does not switch (the worker goes on); join() returns from the notifier
# queued by it, before the worker's sleep(0) resume queued after it. One
# task_done() too many raises ValueError.
import gevent
from gevent.queue import JoinableQueue

q = JoinableQueue()
gevent.spawn(lambda: print("X runs"))
print("main join on empty ->", q.join())

def worker(name):
    while True:
        item = q.get()
        print(name, "got", item)
        gevent.sleep(0)
        q.task_done()
        print(name, "task_done", item, "unfinished", q.unfinished_tasks)
        if item == "stop":
            gevent.sleep(0)
            print(name, "after sleep0")
            return

w = gevent.spawn(worker, "W")
for item in (1, 2, "stop"):
    q.put(item)
print("main put 3, unfinished", q.unfinished_tasks)
print("main join ->", q.join())
print("main after join, unfinished", q.unfinished_tasks)
w.join()
try:
    q.task_done()
except ValueError as e:
    print("main task_done:", type(e).__name__, e)
