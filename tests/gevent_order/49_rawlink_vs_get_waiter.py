# Rule 2: a waiter in get() registered before a rawlink is woken first;
# main's next sleep(0) lets the rawlink fire (same entry) before main
# resumes.
import gevent

g = gevent.spawn(lambda: "v")

def add_rawlink():
    print("H adds rawlink")
    g.rawlink(lambda src: print("rawlink"))

gevent.spawn(add_rawlink)
print("main get ->", g.get())
gevent.sleep(0)
print("main after sleep0")
