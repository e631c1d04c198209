# Rule 2: a greenlet blocked in join() is woken as a link, at its place in
# registration order: link 1 fires, then main runs until its next blocking
# point (sleep(0)), then link 2 (added after main started waiting), then
# main's resume.
import gevent

g = gevent.spawn(lambda: print("G runs"))
g.link(lambda src: print("link 1"))

def h():
    print("H links 2")
    g.link(lambda src: print("link 2"))

gevent.spawn(h)
g.join()
print("main joined")
gevent.sleep(0)
print("main after sleep0")
