package webhooks
import (kjson "sigs.k8s.io/json";"testing";"time";"syscall";"runtime";"github.com/meshkeeper/meshkeeper/internal/inject")
func BenchmarkParts(b *testing.B) {
	pod := podInputs(b)["deployment"]
	body := reviewOf(b, pod)
	cfg := testConfig("default")
	b.Run("decode", func(b *testing.B){ b.ReportAllocs(); for b.Loop(){ decodeReview(body) }})
	b.Run("inject", func(b *testing.B){ b.ReportAllocs(); for b.Loop(){ inject.Inject(pod,cfg,inject.Request{}) }})
	out,_ := inject.Inject(pod,cfg,inject.Request{})
	b.Run("patch", func(b *testing.B){ b.ReportAllocs(); for b.Loop(){ inject.CreatePatch(pod,out) }})
}
func cpuTime() time.Duration { var ru syscall.Rusage; syscall.Getrusage(syscall.RUSAGE_SELF, &ru); return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()) }
func TestCPUPerOp(t *testing.T) {
	pod := podInputs(t)["deployment"]
	body := reviewOf(t, pod)
	cfg := testConfig("default")
	out,_ := inject.Inject(pod,cfg,inject.Request{})
	run := func(name string, f func()) {
		for i:=0;i<2000;i++ { f() }
		runtime.GC()
		n := 20000
		c0, w0 := cpuTime(), time.Now()
		for i:=0;i<n;i++ { f() }
		t.Logf("%-16s cpu %6.1fµs/op wall %6.1fµs/op", name, float64(cpuTime()-c0)/float64(n)/1e3, float64(time.Since(w0))/float64(n)/1e3)
	}
	run("decode", func(){ decodeReview(body) })
	run("inject", func(){ inject.Inject(pod,cfg,inject.Request{}) })
	run("patch", func(){ inject.CreatePatch(pod,out) })
	h := newTestHandler()
	run("handler", func(){ serve(h, "/inject", "application/json", body) })
}
func BenchmarkStrict(b *testing.B) {
	body := reviewOf(b, podInputs(b)["deployment"])
	b.Run("plain", func(b *testing.B){ b.ReportAllocs(); for b.Loop(){ var ar admissionReview; kjson.UnmarshalCaseSensitivePreserveInts(body,&ar) }})
	b.Run("strict-dups", func(b *testing.B){ b.ReportAllocs(); for b.Loop(){ var ar admissionReview; kjson.UnmarshalStrict(body,&ar, kjson.DisallowDuplicateFields) }})
}
