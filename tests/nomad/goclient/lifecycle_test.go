package goclient

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

// lifecycle is one plugin process and the runscoped behind it.
type lifecycle struct {
	t     *testing.T
	p     *launched
	alloc string
	dir   string
}

func (l *lifecycle) configure(bus string) {
	config := msgpack(map[string]interface{}{"bus": bus, "fingerprint_period": "1s"})
	mustCall(l.t, l.p.conn, baseSvc+"SetConfig", basePkg+"SetConfigRequest",
		`{"msgpack_config":"`+b64(config)+`","plugin_api_version":"0.1.0"}`, basePkg+"SetConfigResponse")
}

// ctyTask is a task config block as Nomad sends it: every schema attribute, nil where unset.
func ctyTask(set map[string]interface{}) []byte {
	v := map[string]interface{}{}
	for _, k := range []string{"command", "args", "cores", "memory_max", "cpu_weight", "pids_max", "user", "env",
		"kill_signal", "kill_timeout"} {
		v[k] = nil
	}
	for k, x := range set {
		v[k] = x
	}
	return msgpack(v)
}

// taskConfig is the TaskConfig message Nomad's task runner sends for task `name` of the alloc.
func (l *lifecycle) taskConfig(name string, config map[string]interface{}) string {
	return fmt.Sprintf(`{"id":%q,"name":%q,"alloc_id":%q,"msgpack_driver_config":%q,"env":{"FROM_NOMAD":"yes"},`+
		`"stdout_path":%q,"stderr_path":%q,"alloc_dir":%q,"job_name":"j",`+
		`"resources":{"allocated_resources":{"memory":{"memory_mb":"64"},"cpu":{"cpu_shares":"500"}}}}`,
		l.alloc+"/"+name+"/0001", name, l.alloc, b64(ctyTask(config)), filepath.Join(l.dir, name+".out"),
		filepath.Join(l.dir, name+".err"), l.dir)
}

func (l *lifecycle) start(name string, config map[string]interface{}) (string, map[string]interface{}) {
	resp := mustCall(l.t, l.p.conn, driverSvc+"StartTask", driverPkg+"StartTaskRequest",
		`{"task":`+l.taskConfig(name, config)+`}`, driverPkg+"StartTaskResponse")
	return l.alloc + "/" + name + "/0001", resp["handle"].(map[string]interface{})
}

func (l *lifecycle) driver(method, taskID, extra string) (map[string]interface{}, error) {
	resp, err := call(l.t, l.p.conn, driverSvc+method, driverPkg+method+"Request",
		`{"task_id":"`+taskID+`"`+extra+`}`, driverPkg+method+"Response")
	if err != nil {
		return nil, err
	}
	return asMap(l.t, resp), nil
}

func (l *lifecycle) mustDriver(method, taskID, extra string) map[string]interface{} {
	l.t.Helper()
	out, err := l.driver(method, taskID, extra)
	if err != nil {
		l.t.Fatalf("%s(%s): %v", method, taskID, err)
	}
	return out
}

func (l *lifecycle) inspect(taskID string) map[string]interface{} {
	return l.mustDriver("InspectTask", taskID, "")
}

func field(m map[string]interface{}, path ...string) interface{} {
	var v interface{} = m
	for _, p := range path {
		mm, ok := v.(map[string]interface{})
		if !ok {
			return nil
		}
		v = mm[p]
	}
	return v
}

func eventually(t *testing.T, what string, budget time.Duration, check func() bool) {
	t.Helper()
	deadline := time.Now().Add(budget)
	for !check() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %s", what, budget)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func recvJSON(t *testing.T, s grpc.ClientStream, typ string) (map[string]interface{}, error) {
	m := msg(t, typ, "")
	if err := s.RecvMsg(m); err != nil {
		return nil, err
	}
	return asMap(t, m), nil
}

// The whole life of tasks, as a Nomad agent drives it, against a real runscoped.
func TestTaskLifecycleAgainstRunscoped(t *testing.T) {
	bus := os.Getenv("RUNSCOPE_NOMAD_TEST_BUS")
	if bus == "" {
		t.Skip("needs a real runscoped: run through the host layer (tests/nomad/nomad_lifecycle_host_test.cpp)")
	}
	l := &lifecycle{t: t, p: launch(t), alloc: mustEnv(t, "RUNSCOPE_NOMAD_TEST_ALLOC"), dir: mustEnv(t, "RUNSCOPE_NOMAD_TEST_DIR")}
	defer func() {
		if t.Failed() {
			t.Logf("the plugin's log (through go-plugin):\n%s", l.p.log.String())
		}
		l.p.client.Kill()
	}()
	l.configure(bus)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	t.Log("fingerprint: healthy at once, with runscope's attributes")
	fp, err := recvJSON(t, serverStream(t, ctx, l.p.conn, driverSvc+"Fingerprint", msg(t, driverPkg+"FingerprintRequest", "")),
		driverPkg+"FingerprintResponse")
	if err != nil || fp["health"] != "HEALTHY" {
		t.Fatalf("fingerprint %v %v", fp, err)
	}
	for _, key := range []string{"driver.runscope.version", "driver.runscope.cgroups.manager", "unique.cgroups.version", "unique.cgroups.mode"} {
		if field(fp, "attributes", key, "string_val") == "" || field(fp, "attributes", key, "string_val") == nil {
			t.Errorf("fingerprint lacks %s: %v", key, fp["attributes"])
		}
	}

	events := make(chan map[string]interface{}, 100)
	evStream := serverStream(t, ctx, l.p.conn, driverSvc+"TaskEvents", msg(t, driverPkg+"TaskEventsRequest", ""))
	go func() {
		defer close(events)
		for {
			ev, err := recvJSON(t, evStream, driverPkg+"DriverTaskEvent")
			if err != nil {
				return
			}
			events <- ev
		}
	}()

	t.Log("start: a task that prints, waits for SIGUSR1 and exits 7")
	web, handle := l.start("web", map[string]interface{}{
		"command": "/bin/sh", "args": []string{"-c", `trap 'exit 7' USR1; echo "up $FROM_NOMAD $EXTRA"; echo oops >&2; while :; do sleep 0.1; done`},
		"env": map[string]string{"EXTRA": "from-config"}, "pids_max": 64,
	})
	if handle["version"] != float64(1) || handle["state"] != "RUNNING" || handle["driver_state"] == "" {
		t.Errorf("handle %v", handle)
	}
	in := l.inspect(web)
	if field(in, "task", "state") != "RUNNING" || field(in, "driver", "attributes", "pid") == "0" {
		t.Fatalf("inspect %v", in)
	}
	eventually(t, "output in Nomad's stdout path", 20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(l.dir, "web.out"))
		return strings.Contains(string(b), "up yes from-config")
	})
	eventually(t, "output in Nomad's stderr path", 20*time.Second, func() bool {
		b, _ := os.ReadFile(filepath.Join(l.dir, "web.err"))
		return strings.Contains(string(b), "oops")
	})

	t.Log("stats: a stream at the requested interval")
	sctx, scancel := context.WithCancel(ctx)
	stats := serverStream(t, sctx, l.p.conn, driverSvc+"TaskStats",
		msg(t, driverPkg+"TaskStatsRequest", `{"task_id":"`+web+`","collection_interval":"0.2s"}`))
	var stamps []string
	for i := 0; i < 3; i++ {
		s, err := recvJSON(t, stats, driverPkg+"TaskStatsResponse")
		if err != nil {
			t.Fatalf("stats %d: %v", i, err)
		}
		usage := field(s, "stats", "agg_resource_usage").(map[string]interface{})
		if field(usage, "memory", "usage") == "0" || !strings.Contains(fmt.Sprint(field(usage, "cpu", "measured_fields")), "PERCENT") {
			t.Errorf("stats sample %v", usage)
		}
		stamps = append(stamps, field(s, "stats", "timestamp").(string))
	}
	first, _ := time.Parse(time.RFC3339Nano, stamps[0])
	last, _ := time.Parse(time.RFC3339Nano, stamps[2])
	if gap := last.Sub(first); gap < 300*time.Millisecond {
		t.Errorf("3 samples at 0.2 s came within %s", gap)
	}
	scancel()

	t.Log("signal, then wait: exit code 7")
	l.mustDriver("SignalTask", web, `,"signal":"SIGUSR1"`)
	waited := l.mustDriver("WaitTask", web, "")
	if field(waited, "result", "exit_code") != float64(7) {
		t.Fatalf("wait %v", waited)
	}
	if in := l.inspect(web); field(in, "task", "state") != "EXITED" || field(in, "task", "result", "exit_code") != float64(7) {
		t.Errorf("inspect after exit %v", in)
	}
	seen := map[string]bool{}
	eventually(t, "running and exited events of the task", 20*time.Second, func() bool {
		select {
		case ev := <-events:
			if ev["task_id"] == web && ev["alloc_id"] == l.alloc && ev["task_name"] == "web" {
				seen[fmt.Sprint(field(ev, "annotations", "runscope.state"))] = true
			}
		default:
		}
		return seen["running"] && seen["exited"]
	})
	l.mustDriver("DestroyTask", web, "")
	if _, err := l.driver("InspectTask", web, ""); statusOf(err).Code().String() != "NotFound" {
		t.Errorf("inspect after destroy: %v", err)
	}

	t.Log("stop with a signal the task ignores: killed after the timeout")
	stubborn, _ := l.start("stubborn", map[string]interface{}{"command": "/bin/sh", "args": []string{"-c", `trap '' INT; while :; do sleep 0.1; done`}})
	if _, err := l.driver("DestroyTask", stubborn, ""); statusOf(err).Code().String() != "FailedPrecondition" {
		t.Errorf("destroying a running task without force: %v", err)
	}
	began := time.Now()
	l.mustDriver("StopTask", stubborn, `,"signal":"SIGINT","timeout":"1s"`)
	waited = l.mustDriver("WaitTask", stubborn, "")
	if field(waited, "result", "signal") == float64(0) || time.Since(began) < time.Second {
		t.Errorf("stop: %v after %s", waited, time.Since(began))
	}
	l.mustDriver("DestroyTask", stubborn, "")

	t.Log("exec: a command inside the running task (runscoped's EnterTask), its output and exit code")
	sleeper, handle := l.start("survivor", map[string]interface{}{"command": "/bin/sleep", "args": []string{"300"}})
	if caps := mustCall(t, l.p.conn, driverSvc+"Capabilities", driverPkg+"CapabilitiesRequest", "{}",
		driverPkg+"CapabilitiesResponse"); field(caps, "capabilities", "exec") != true {
		t.Errorf("capabilities %v: no exec against a runscoped that has EnterTask", caps)
	}
	execd, err := l.driver("ExecTask", sleeper, `,"command":["/bin/sh","-c","echo in $FROM_NOMAD; grep memory /proc/self/cgroup; exit 3"],"timeout":"20s"`)
	if err != nil || field(execd, "result", "exit_code") != float64(3) {
		t.Errorf("exec: %v %v", execd, err)
	} else if out, _ := base64.StdEncoding.DecodeString(fmt.Sprint(execd["stdout"])); !strings.Contains(string(out), "in yes") ||
		!strings.Contains(string(out), "survivor") {
		t.Errorf("exec's output %q: not the task's env and memory cgroup", out)
	}

	t.Log("recover: the plugin is killed, a new one reattaches the running task")
	pid := field(l.inspect(sleeper), "driver", "attributes", "pid")
	killed := l.p.client.ReattachConfig()
	syscall.Kill(killed.Pid, syscall.SIGKILL)
	eventually(t, "the killed plugin's exit", 10*time.Second, l.p.client.Exited)
	os.RemoveAll(filepath.Dir(killed.Addr.String())) // it could not remove its socket folder
	l.p = launch(t)
	l.configure(bus)
	if _, err := l.driver("InspectTask", sleeper, ""); statusOf(err).Code().String() != "NotFound" {
		t.Errorf("a new plugin knew the task before RecoverTask: %v", err)
	}
	handleJSON, _ := protojson.Marshal(mapToHandle(t, handle))
	l.mustDriver("RecoverTask", sleeper, `,"handle":`+string(handleJSON))
	in = l.inspect(sleeper)
	if field(in, "task", "state") != "RUNNING" || field(in, "driver", "attributes", "pid") != pid {
		t.Errorf("recovered %v, want running with pid %v", in, pid)
	}
	l.mustDriver("StopTask", sleeper, `,"signal":"SIGTERM","timeout":"5s"`)
	if w := l.mustDriver("WaitTask", sleeper, ""); field(w, "result", "signal") != float64(15) {
		t.Errorf("stopped with SIGTERM: %v", w)
	}
	l.mustDriver("DestroyTask", sleeper, "")
	_, err = l.driver("RecoverTask", l.alloc+"/gone/0001", `,"handle":{"version":1,"driver_state":"`+
		b64([]byte(`{"version":1,"alloc":"`+l.alloc+`","task":"never-started","kill_signal":null}`))+`"}`)
	if statusOf(err).Code().String() != "NotFound" {
		t.Errorf("recovering a task runscoped does not have: %v", err)
	}

	t.Log("bad task configs: refused by name, not recoverable, nothing started")
	for key, bad := range map[string]map[string]interface{}{
		"command":    {"args": []string{"x"}},
		"memory_max": {"command": "/bin/true", "memory_max": "lots"},
		"cores":      {"command": "/bin/true", "cores": 0},
		"user":       {"command": "/bin/true", "user": "no-such-user-runscope"},
	} {
		_, err := call(t, l.p.conn, driverSvc+"StartTask", driverPkg+"StartTaskRequest",
			`{"task":`+l.taskConfig("bad", bad)+`}`, driverPkg+"StartTaskResponse")
		s := statusOf(err)
		if s == nil || err == nil || !strings.Contains(s.Message(), key) {
			t.Errorf("bad %s: %v", key, err)
			continue
		}
		if rec, ok := recoverable(t, err); !ok || rec {
			t.Errorf("bad %s: RecoverableError detail %v present=%v", key, rec, ok)
		}
	}

	t.Log("daemon down: fingerprint unhealthy with the reason, StartTask recoverable")
	down := launch(t)
	defer down.client.Kill()
	(&lifecycle{t: t, p: down}).configure(mustEnv(t, "RUNSCOPE_NOMAD_TEST_EMPTY_BUS"))
	fp, err = recvJSON(t, serverStream(t, ctx, down.conn, driverSvc+"Fingerprint", msg(t, driverPkg+"FingerprintRequest", "")),
		driverPkg+"FingerprintResponse")
	if err != nil || fp["health"] != "UNHEALTHY" || !strings.Contains(fmt.Sprint(fp["health_description"]), "runscoped is not running") {
		t.Errorf("fingerprint with no daemon: %v %v", fp, err)
	}
	_, err = call(t, down.conn, driverSvc+"StartTask", driverPkg+"StartTaskRequest",
		`{"task":`+l.taskConfig("nodaemon", map[string]interface{}{"command": "/bin/true"})+`}`, driverPkg+"StartTaskResponse")
	if rec, ok := recoverable(t, err); !ok || !rec {
		t.Errorf("StartTask with no daemon: %v (recoverable %v, detail %v)", err, rec, ok)
	}
	// runscoped away (restarting): a handle is still taken, and a wait keeps waiting, not failing.
	_, err = call(t, down.conn, driverSvc+"RecoverTask", driverPkg+"RecoverTaskRequest",
		`{"task_id":"`+sleeper+`","handle":`+string(handleJSON)+`}`, driverPkg+"RecoverTaskResponse")
	if err != nil {
		t.Errorf("RecoverTask with runscoped away: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer wcancel()
	err = down.conn.Invoke(wctx, driverSvc+"WaitTask", msg(t, driverPkg+"WaitTaskRequest", `{"task_id":"`+sleeper+`"}`),
		msg(t, driverPkg+"WaitTaskResponse", ""), grpc.ForceCodec(codec{}))
	if statusOf(err).Code().String() != "DeadlineExceeded" {
		t.Errorf("WaitTask with runscoped away ended: %v", err)
	}
}

// mapToHandle turns the handle StartTask returned (as a map) back into a TaskHandle message.
func mapToHandle(t *testing.T, handle map[string]interface{}) proto.Message {
	raw, err := jsonMarshal(handle)
	if err != nil {
		t.Fatal(err)
	}
	return msg(t, driverPkg+"TaskHandle", string(raw))
}

// recoverable reads Nomad's RecoverableError from details[0] of the status, as the agent does.
func recoverable(t *testing.T, err error) (bool, bool) {
	s := statusOf(err)
	if s == nil || len(s.Proto().Details) == 0 {
		return false, false
	}
	any := s.Proto().Details[0]
	if any.TypeUrl != "type.googleapis.com/hashicorp.nomad.plugins.shared.structs.RecoverableError" {
		return false, false
	}
	m := msg(t, "hashicorp.nomad.plugins.shared.structs.RecoverableError", "")
	if proto.Unmarshal(any.Value, m) != nil {
		return false, false
	}
	return asMap(t, m)["recoverable"] == true, true
}
