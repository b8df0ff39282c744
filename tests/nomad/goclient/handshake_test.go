package goclient

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"
)

// Run by hand (no cookie), the plugin says what it is on stderr, prints no handshake, exits 1.
func TestRefusesToRunWithoutTheMagicCookie(t *testing.T) {
	cmd := exec.Command(mustEnv(t, "RUNSCOPE_NOMAD_DRIVER"))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	exit, ok := err.(*exec.ExitError)
	if !ok || exit.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v", err)
	}
	if stdout.Len() != 0 {
		t.Errorf("printed on stdout without a cookie: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), cookieKey) || !strings.Contains(stderr.String(), "plugin") {
		t.Errorf("stderr does not explain: %q", stderr.String())
	}
}

// A go-plugin client that offers only another protocol version is refused the same way.
func TestRefusesAnAgentWithoutProtocolVersion2(t *testing.T) {
	cmd := exec.Command(mustEnv(t, "RUNSCOPE_NOMAD_DRIVER"))
	cmd.Env = []string{cookieKey + "=" + cookieValue, "PLUGIN_PROTOCOL_VERSIONS=3,4"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("started for an agent offering only versions 3 and 4")
	}
	if !strings.Contains(stderr.String(), "3,4") {
		t.Errorf("stderr does not name the offered versions: %q", stderr.String())
	}
}

// go-plugin's own client: handshake, health, the base plugin's facts, and a graceful Shutdown.
func TestHandshakeHealthPluginInfoAndGracefulShutdown(t *testing.T) {
	p := launch(t)
	defer p.client.Kill()
	if got := p.client.Protocol(); got != "grpc" {
		t.Errorf("protocol %q, want grpc", got)
	}
	if v := p.client.NegotiatedVersion(); v != 2 {
		t.Errorf("negotiated version %d, want 2", v)
	}
	addr := p.client.ReattachConfig().Addr
	if addr.Network() != "unix" {
		t.Errorf("serves on %s, want a unix socket", addr.Network())
	}
	if info, err := os.Stat(addr.String()); err != nil || info.Mode()&os.ModeSocket == 0 {
		t.Fatalf("socket %s: %v", addr, err)
	}
	if dir, err := os.Stat(strings.TrimSuffix(addr.String(), "/plugin.sock")); err != nil || dir.Mode().Perm() != 0o700 {
		t.Errorf("socket folder is not private (0700): %v %v", dir.Mode(), err)
	}
	if err := p.proto.Ping(); err != nil { // go-plugin's Ping: Health.Check("plugin")
		t.Fatalf("ping: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	health, err := grpc_health_v1.NewHealthClient(p.conn).Check(ctx, &grpc_health_v1.HealthCheckRequest{Service: "plugin"})
	if err != nil || health.Status != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatalf("health of \"plugin\": %v %v", health, err)
	}

	info := mustCall(t, p.conn, baseSvc+"PluginInfo", basePkg+"PluginInfoRequest", "", basePkg+"PluginInfoResponse")
	if info["type"] != "DRIVER" || info["name"] != "runscope" {
		t.Errorf("plugin info %v", info)
	}
	if v, _ := info["plugin_api_versions"].([]interface{}); len(v) != 1 || v[0] != "0.1.0" {
		t.Errorf("api versions %v, want [0.1.0]", info["plugin_api_versions"])
	}
	schema := mustCall(t, p.conn, baseSvc+"ConfigSchema", basePkg+"ConfigSchemaRequest", "", basePkg+"ConfigSchemaResponse")
	attrs := schema["spec"].(map[string]interface{})["object"].(map[string]interface{})["attributes"].(map[string]interface{})
	if _, ok := attrs["bus"]; !ok {
		t.Errorf("config schema has no bus: %v", attrs)
	}
	// SetConfig as Nomad sends it: the block decoded by the schema, cty MessagePack.
	config := msgpack(map[string]interface{}{"bus": "unix:path=/nonexistent/bus", "fingerprint_period": "1s"})
	mustCall(t, p.conn, baseSvc+"SetConfig", basePkg+"SetConfigRequest",
		`{"msgpack_config":"`+b64(config)+`","plugin_api_version":"0.1.0"}`, basePkg+"SetConfigResponse")
	bad := msgpack(map[string]interface{}{"bus": "system", "fingerprint_period": "soon"})
	_, err = call(t, p.conn, baseSvc+"SetConfig", basePkg+"SetConfigRequest", `{"msgpack_config":"`+b64(bad)+`"}`,
		basePkg+"SetConfigResponse")
	if err == nil || !strings.Contains(err.Error(), "fingerprint_period") {
		t.Errorf("a bad fingerprint_period was not refused by name: %v", err)
	}

	caps := mustCall(t, p.conn, driverSvc+"Capabilities", driverPkg+"CapabilitiesRequest", "", driverPkg+"CapabilitiesResponse")
	c := caps["capabilities"].(map[string]interface{})
	if c["send_signals"] != true || c["fs_isolation"] != "NONE" {
		t.Errorf("capabilities %v", c)
	}
	_, err = call(t, p.conn, driverSvc+"CreateNetwork", driverPkg+"CreateNetworkRequest", `{"alloc_id":"a"}`,
		driverPkg+"CreateNetworkResponse")
	if s := statusOf(err); s == nil || s.Code().String() != "Unimplemented" {
		t.Errorf("CreateNetwork: %v", err)
	}

	// Kill() calls GRPCController.Shutdown and waits up to 2 s for the process to exit on its own.
	p.client.Kill()
	logs := p.log.String()
	if strings.Contains(logs, "plugin failed to exit gracefully") || !strings.Contains(logs, "plugin exited") {
		t.Errorf("shutdown was not graceful:\n%s", logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "plugin process exited") && strings.Contains(line, "error") {
			t.Errorf("the plugin exited with an error: %s", line)
		}
	}
	// Its stderr is hclog JSON: go-plugin re-logs it at the plugin's own level.
	if !strings.Contains(logs, "[INFO]  agent.runscope-nomad-driver: serving:") {
		t.Errorf("the plugin's log was not read as hclog JSON at INFO:\n%s", logs)
	}
	if _, err := os.Stat(addr.String()); !os.IsNotExist(err) {
		t.Errorf("socket %s left behind: %v", addr, err)
	}
}
