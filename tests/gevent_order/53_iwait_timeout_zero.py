# Rule 6: iwait with a zero timeout yields what finishes during the
# callback pass (A, B), then stops at the zero timer without C.
import gevent

a = gevent.spawn(lambda: print("A runs"))
b = gevent.spawn(lambda: print("B runs"))
c = gevent.spawn(gevent.sleep, 10)
names = {a: "A", b: "B", c: "C"}
for g in gevent.iwait([c, b, a], timeout=0):
    print("main got", names[g])
print("main iwait over")
c.kill()
