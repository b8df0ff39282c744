// Package goclient drives runscope-nomad-driver the way a Nomad agent does: HashiCorp's go-plugin
// client launches it (cookie, handshake line, gRPC over the unix socket), and grpc-go calls its
// services. Nomad itself is not installable on the machines this runs on (no package in Debian,
// no network for its release archive), so these tests are the real-client check; the messages
// are built at run time from the descriptor set of the project's own .proto files (dynamicpb),
// so nothing here is generated from, or copied out of, Nomad.
//
// Built offline against Debian's packages (GO111MODULE=off, GOPATH=/usr/share/gocode): go-plugin
// 1.0.1, grpc-go 1.33, google.golang.org/protobuf 1.28. Nomad v1.6 pins go-plugin 1.4.10; what
// differs for this protocol is listed in docs/nomad.md.
//
// Environment: RUNSCOPE_NOMAD_DRIVER (the plugin), RUNSCOPE_NOMAD_DESCRIPTORS (protoc's
// --descriptor_set_out), and for the lifecycle test RUNSCOPE_NOMAD_TEST_BUS (a bus with a real
// runscoped), RUNSCOPE_NOMAD_TEST_EMPTY_BUS (a bus with none) and RUNSCOPE_NOMAD_TEST_DIR.
package goclient

import (
	"bytes"
	"encoding/base64"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	hclog "github.com/hashicorp/go-hclog"
	plugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"
)

const (
	cookieKey   = "NOMAD_PLUGIN_MAGIC_COOKIE"
	cookieValue = "e4327c2e01eabfd75a8a67adb114fb34a757d57eee7728d857a8cec6e91a7255"
	baseSvc     = "/hashicorp.nomad.plugins.base.proto.BasePlugin/"
	driverSvc   = "/hashicorp.nomad.plugins.drivers.proto.Driver/"
	driverPkg   = "hashicorp.nomad.plugins.drivers.proto."
	basePkg     = "hashicorp.nomad.plugins.base.proto."
)

func mustEnv(t *testing.T, name string) string {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		t.Fatalf("%s is not set (ctest sets it; see tests/nomad/CMakeLists.txt)", name)
	}
	return v
}

var (
	filesOnce sync.Once
	files     *protoregistry.Files
	filesErr  error
)

func registry(t *testing.T) *protoregistry.Files {
	t.Helper()
	filesOnce.Do(func() {
		raw, err := os.ReadFile(mustEnv(t, "RUNSCOPE_NOMAD_DESCRIPTORS"))
		if err != nil {
			filesErr = err
			return
		}
		var set descriptorpb.FileDescriptorSet
		if filesErr = proto.Unmarshal(raw, &set); filesErr == nil {
			files, filesErr = protodesc.NewFiles(&set)
		}
	})
	if filesErr != nil {
		t.Fatalf("loading the descriptor set: %v", filesErr)
	}
	return files
}

// msg builds the named message from protojson text ("" for an empty one).
func msg(t *testing.T, name, text string) *dynamicpb.Message {
	t.Helper()
	d, err := registry(t).FindDescriptorByName(protoreflect.FullName(name))
	if err != nil {
		t.Fatalf("no message %s: %v", name, err)
	}
	m := dynamicpb.NewMessage(d.(protoreflect.MessageDescriptor))
	if text != "" {
		if err := protojson.Unmarshal([]byte(text), m); err != nil {
			t.Fatalf("building %s from %s: %v", name, text, err)
		}
	}
	return m
}

// asMap is the message as protojson sees it (proto field names, defaults included).
func asMap(t *testing.T, m proto.Message) map[string]interface{} {
	t.Helper()
	raw, err := protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	out := map[string]interface{}{}
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("unmarshal: %v", err)
	}
	return out
}

// codec sends dynamic messages with the protobuf APIv2 runtime (Debian's grpc-go default codec
// is built on the older github.com/golang/protobuf, which predates dynamicpb).
type codec struct{}

func (codec) Marshal(v interface{}) ([]byte, error)      { return proto.Marshal(v.(proto.Message)) }
func (codec) Unmarshal(data []byte, v interface{}) error { return proto.Unmarshal(data, v.(proto.Message)) }
func (codec) Name() string                               { return "proto" }

// call invokes a unary method; the response is the method's output type, built from the registry.
func call(t *testing.T, conn *grpc.ClientConn, method, reqType, reqJSON, respType string) (*dynamicpb.Message, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	resp := msg(t, respType, "")
	err := conn.Invoke(ctx, method, msg(t, reqType, reqJSON), resp, grpc.ForceCodec(codec{}))
	return resp, err
}

func mustCall(t *testing.T, conn *grpc.ClientConn, method, reqType, reqJSON, respType string) map[string]interface{} {
	t.Helper()
	resp, err := call(t, conn, method, reqType, reqJSON, respType)
	if err != nil {
		t.Fatalf("%s(%s): %v", method, reqJSON, err)
	}
	return asMap(t, resp)
}

// serverStream opens a server-streaming call and sends its one request.
func serverStream(t *testing.T, ctx context.Context, conn *grpc.ClientConn, method string, req proto.Message) grpc.ClientStream {
	t.Helper()
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, method, grpc.ForceCodec(codec{}))
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if err := s.SendMsg(req); err != nil {
		t.Fatalf("%s send: %v", method, err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatalf("%s close: %v", method, err)
	}
	return s
}

// rawPlugin hands out the plugin's gRPC connection, as Nomad's driver plugin does before
// wrapping it in its generated client.
type rawPlugin struct{ plugin.NetRPCUnsupportedPlugin }

func (rawPlugin) GRPCServer(*plugin.GRPCBroker, *grpc.Server) error {
	return errors.New("client side only")
}
func (rawPlugin) GRPCClient(_ context.Context, _ *plugin.GRPCBroker, c *grpc.ClientConn) (interface{}, error) {
	return c, nil
}

// syncBuffer collects go-plugin's log (the plugin's stderr lines are re-logged into it).
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type launched struct {
	client *plugin.Client
	proto  plugin.ClientProtocol
	conn   *grpc.ClientConn
	log    *syncBuffer
}

// launch starts the plugin the way Nomad's plugin loader does (its handshake config and
// protocol list) and dispenses the driver's connection.
func launch(t *testing.T) *launched {
	t.Helper()
	logs := &syncBuffer{}
	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig: plugin.HandshakeConfig{
			ProtocolVersion:  2,
			MagicCookieKey:   cookieKey,
			MagicCookieValue: cookieValue,
		},
		Plugins:          map[string]plugin.Plugin{"driver": &rawPlugin{}},
		Cmd:              exec.Command(mustEnv(t, "RUNSCOPE_NOMAD_DRIVER")),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		Logger:           hclog.New(&hclog.LoggerOptions{Name: "agent", Output: logs, Level: hclog.Trace}),
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		t.Fatalf("go-plugin could not start the plugin: %v\n%s", err, logs.String())
	}
	raw, err := rpc.Dispense("driver")
	if err != nil {
		client.Kill()
		t.Fatalf("dispense: %v", err)
	}
	return &launched{client: client, proto: rpc, conn: raw.(*grpc.ClientConn), log: logs}
}

// msgpack encodes what go-cty's cty/msgpack writes for an object of strings, numbers, lists and
// maps (every attribute present, absent ones as nil; map keys in sorted order).
func msgpack(v interface{}) []byte {
	var b bytes.Buffer
	encodeMsgpack(&b, v)
	return b.Bytes()
}

func statusOf(err error) *status.Status { s, _ := status.FromError(err); return s }

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func jsonMarshal(v interface{}) ([]byte, error) { return json.Marshal(v) }
