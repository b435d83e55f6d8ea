// Restricted unpickler (pickle.h). Python's pickle is a small stack machine:
// each opcode pushes a value, or pops values and pushes a result; MARK
// remembers a stack height for the opcodes that take "everything since the
// mark" (TUPLE, SETITEMS, APPENDS). Here values are nodes of one arena and
// the stack and memo hold node indices, so sharing a value (BINGET) copies
// nothing and nothing is freed recursively. What a state dict needs:
//   GLOBAL collections.OrderedDict + EMPTY_TUPLE + REDUCE   -> an empty dict
//   BUILD on it (the module's _metadata)                    -> ignored
//   BINPERSID ('storage', torch.FloatStorage, key, 'cpu', numel) -> a storage
//   GLOBAL torch._utils._rebuild_tensor_v2 + (storage, offset, size, stride,
//     requires_grad, hooks[, metadata]) + REDUCE            -> a tensor view
//   SETITEMS name, tensor, ...                               -> the dict's items
#include "io/pickle.h"

#include <cstdio>
#include <cstring>
#include <limits>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "io/safetensors.h"  // shape_str

namespace cs {

namespace {

enum class K : uint8_t { None, Bool, Int, BigInt, Float, Str, Tuple, List, Dict, Global, Storage, Tensor };
enum class Fn : uint8_t { None, OrderedDict, RebuildTensorV2, RebuildTensor, RebuildParameter, StorageType };

const char* kind_name(K k) {
  switch (k) {
    case K::None: return "None";
    case K::Bool: return "bool";
    case K::Int: case K::BigInt: return "int";
    case K::Float: return "float";
    case K::Str: return "string";
    case K::Tuple: return "tuple";
    case K::List: return "list";
    case K::Dict: return "dict";
    case K::Global: return "class or function";
    case K::Storage: return "storage";
    case K::Tensor: return "tensor";
  }
  return "value";
}

struct Node {
  K kind = K::None;
  int64_t i = 0;           // Bool, Int; Storage: numel
  std::string s;           // Str; BigInt: little-endian two's complement bytes; Global: "module.name"; Storage: key
  std::vector<int> items;  // Tuple, List; Dict: key, value, key, value, ...
  Fn fn = Fn::None;        // Global
  std::string dtype;       // Global of a storage type, Storage
  int tensor = -1;         // Tensor: index into Machine::tensors
};

struct TensorView {
  int storage = -1;  // node
  int64_t offset = 0;
  std::vector<int64_t> shape, stride;
};

// torch.<X>Storage -> safetensors dtype name.
std::string storage_dtype(const std::string& name) {
  static const std::pair<const char*, const char*> kTypes[] = {
      {"FloatStorage", "F32"}, {"HalfStorage", "F16"},  {"BFloat16Storage", "BF16"}, {"DoubleStorage", "F64"},
      {"LongStorage", "I64"},  {"IntStorage", "I32"},   {"ShortStorage", "I16"},    {"CharStorage", "I8"},
      {"ByteStorage", "U8"},   {"BoolStorage", "BOOL"}};
  for (const auto& [n, d] : kTypes)
    if (name == n) return d;
  return {};
}

const char* opcode_name(uint8_t op) {
  switch (op) {
    case '(': return "MARK"; case '.': return "STOP"; case '0': return "POP"; case '1': return "POP_MARK";
    case '2': return "DUP"; case 'F': return "FLOAT"; case 'I': return "INT"; case 'J': return "BININT";
    case 'K': return "BININT1"; case 'L': return "LONG"; case 'M': return "BININT2"; case 'N': return "NONE";
    case 'P': return "PERSID"; case 'Q': return "BINPERSID"; case 'R': return "REDUCE"; case 'S': return "STRING";
    case 'T': return "BINSTRING"; case 'U': return "SHORT_BINSTRING"; case 'V': return "UNICODE";
    case 'X': return "BINUNICODE"; case 'a': return "APPEND"; case 'b': return "BUILD"; case 'c': return "GLOBAL";
    case 'd': return "DICT"; case '}': return "EMPTY_DICT"; case 'e': return "APPENDS"; case 'g': return "GET";
    case 'h': return "BINGET"; case 'i': return "INST"; case 'j': return "LONG_BINGET"; case 'l': return "LIST";
    case ']': return "EMPTY_LIST"; case 'o': return "OBJ"; case 'p': return "PUT"; case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT"; case 's': return "SETITEM"; case 't': return "TUPLE"; case ')': return "EMPTY_TUPLE";
    case 'u': return "SETITEMS"; case 'G': return "BINFLOAT"; case 0x80: return "PROTO"; case 0x81: return "NEWOBJ";
    case 0x82: return "EXT1"; case 0x83: return "EXT2"; case 0x84: return "EXT4"; case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2"; case 0x87: return "TUPLE3"; case 0x88: return "NEWTRUE"; case 0x89: return "NEWFALSE";
    case 0x8a: return "LONG1"; case 0x8b: return "LONG4"; case 'B': return "BINBYTES"; case 'C': return "SHORT_BINBYTES";
    case 0x8c: return "SHORT_BINUNICODE"; case 0x8d: return "BINUNICODE8"; case 0x8e: return "BINBYTES8";
    case 0x8f: return "EMPTY_SET"; case 0x90: return "ADDITEMS"; case 0x91: return "FROZENSET"; case 0x92: return "NEWOBJ_EX";
    case 0x93: return "STACK_GLOBAL"; case 0x94: return "MEMOIZE"; case 0x95: return "FRAME";
    case 0x96: return "BYTEARRAY8"; case 0x97: return "NEXT_BUFFER"; case 0x98: return "READONLY_BUFFER";
  }
  return "unknown";
}

// A file's string in a message.
std::string shown(std::string_view s, size_t max = 60) { return message_text(s, max); }

class Machine {
 public:
  Machine(std::span<const uint8_t> b, std::string what, size_t start) : b_(b), what_(std::move(what)), pos_(start) {}

  // Runs to STOP; returns the result's node.
  int run();
  size_t end() const { return pos_; }
  const Node& node(int i) const { return nodes_[size_t(i)]; }
  const TensorView& tensor(int i) const { return tensors_[size_t(i)]; }
  [[noreturn]] void fail(const std::string& msg) const { throw Error(what_ + ": " + msg); }

 private:
  uint64_t read(int n) {
    need(uint64_t(n));
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; --i) v = (v << 8) | b_[pos_ + size_t(i)];
    pos_ += size_t(n);
    return v;
  }
  std::string_view bytes(uint64_t n) {
    need(n);
    std::string_view s(reinterpret_cast<const char*>(b_.data() + pos_), size_t(n));
    pos_ += size_t(n);
    return s;
  }
  void need(uint64_t n) const {
    if (n > b_.size() - pos_)
      fail("ends early: opcode " + std::string(opcode_name(op_)) + " at byte " + std::to_string(op_at_) + " needs " +
           std::to_string(n) + " more bytes (the file is truncated or damaged)");
  }
  int add(Node n) {
    nodes_.push_back(std::move(n));
    return int(nodes_.size() - 1);
  }
  void push(int i) { stack_.push_back(i); }
  int pop() {
    if (stack_.empty() || (!marks_.empty() && stack_.size() == marks_.back()))
      fail(std::string(opcode_name(op_)) + " at byte " + std::to_string(op_at_) + " finds nothing to take (malformed pickle)");
    const int v = stack_.back();
    stack_.pop_back();
    return v;
  }
  int top() {
    const int v = pop();
    push(v);
    return v;
  }
  std::vector<int> pop_mark() {
    if (marks_.empty()) fail(std::string(opcode_name(op_)) + " at byte " + std::to_string(op_at_) + " has no MARK");
    std::vector<int> items(stack_.begin() + std::ptrdiff_t(marks_.back()), stack_.end());
    stack_.resize(marks_.back());
    marks_.pop_back();
    return items;
  }
  Node& at(int i) { return nodes_[size_t(i)]; }
  int expect(int i, K k, const char* role) {
    if (at(i).kind != k)
      fail(std::string(role) + " is a " + kind_name(at(i).kind) + ", not a " + kind_name(k) + " (" + opcode_name(op_) +
           " at byte " + std::to_string(op_at_) + ")");
    return i;
  }
  int global(const std::string& module, const std::string& name);
  int reduce(int callable, int args);
  int persistent(int pid);
  std::vector<int64_t> ints(int tuple, const char* role);

  std::span<const uint8_t> b_;
  std::string what_;
  size_t pos_;
  uint8_t op_ = 0;
  size_t op_at_ = 0;
  std::vector<Node> nodes_;
  std::vector<TensorView> tensors_;
  std::vector<int> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, int> memo_;
};

int Machine::global(const std::string& module, const std::string& name) {
  Node n;
  n.kind = K::Global;
  n.s = module + "." + name;
  if (module == "collections" && name == "OrderedDict") n.fn = Fn::OrderedDict;
  else if (module == "torch._utils" && name == "_rebuild_tensor_v2") n.fn = Fn::RebuildTensorV2;
  else if (module == "torch._utils" && name == "_rebuild_tensor") n.fn = Fn::RebuildTensor;
  else if (module == "torch._utils" && name == "_rebuild_parameter") n.fn = Fn::RebuildParameter;
  else if (module == "torch" && !storage_dtype(name).empty()) {
    n.fn = Fn::StorageType;
    n.dtype = storage_dtype(name);
  } else {
    fail("global '" + shown(n.s, 80) + "' at byte " + std::to_string(op_at_) +
         " is not allowed: a checkpoint may hold only a dict of tensors (OrderedDict, torch._utils._rebuild_tensor_v2, "
         "torch storages), and nothing in a file is ever run");
  }
  return add(std::move(n));
}

std::vector<int64_t> Machine::ints(int tuple, const char* role) {
  expect(tuple, K::Tuple, role);
  std::vector<int64_t> v;
  for (int i : at(tuple).items) {
    if (at(i).kind != K::Int || at(i).i < 0)
      fail(std::string(role) + " holds a " + kind_name(at(i).kind) + " where a non-negative int belongs");
    v.push_back(at(i).i);
  }
  return v;
}

int Machine::reduce(int callable, int args) {
  const Node& f = at(callable);
  if (f.kind != K::Global || f.fn == Fn::StorageType) {
    std::string what = "a ";
    if (f.kind == K::Global) what = "'" + shown(f.s) + "'";
    else what += kind_name(f.kind);
    fail("REDUCE at byte " + std::to_string(op_at_) + " calls " + what + ", which a state dict never does");
  }
  expect(args, K::Tuple, "the arguments");
  const std::vector<int> a = at(args).items;
  auto arity = [&](size_t lo, size_t hi) {
    if (a.size() < lo || a.size() > hi)
      fail("'" + f.s + "' at byte " + std::to_string(op_at_) + " gets " + std::to_string(a.size()) +
           " arguments, expected " + std::to_string(lo) + (hi > lo ? " to " + std::to_string(hi) : ""));
  };
  switch (f.fn) {
    case Fn::OrderedDict: {
      arity(0, 0);
      Node d;
      d.kind = K::Dict;
      return add(std::move(d));
    }
    case Fn::RebuildTensorV2:
    case Fn::RebuildTensor: {
      f.fn == Fn::RebuildTensor ? arity(4, 4) : arity(6, 7);
      TensorView t;
      t.storage = expect(a[0], K::Storage, "a tensor's storage");
      if (at(a[1]).kind != K::Int || at(a[1]).i < 0) fail("a tensor's storage offset is not a non-negative int");
      t.offset = at(a[1]).i;
      t.shape = ints(a[2], "a tensor's size");
      t.stride = ints(a[3], "a tensor's stride");
      if (t.shape.size() != t.stride.size())
        fail("a tensor has " + std::to_string(t.shape.size()) + " sizes but " + std::to_string(t.stride.size()) +
             " strides");
      tensors_.push_back(std::move(t));
      Node n;
      n.kind = K::Tensor;
      n.tensor = int(tensors_.size() - 1);
      return add(std::move(n));
    }
    case Fn::RebuildParameter:
      arity(3, 3);
      return expect(a[0], K::Tensor, "a parameter's data");
    default:
      fail("internal: unhandled global");
  }
}

// ('storage', torch.<X>Storage, key, location, numel[, view_metadata]).
int Machine::persistent(int pid) {
  expect(pid, K::Tuple, "a persistent id");
  const std::vector<int> a = at(pid).items;
  if (a.size() < 5 || a.size() > 6 || at(a[0]).kind != K::Str || at(a[0]).s != "storage")
    fail("persistent id at byte " + std::to_string(op_at_) + " is not a storage reference ('storage', type, key, location, size)");
  const Node& type = at(a[1]);
  if (type.kind != K::Global || type.fn != Fn::StorageType) fail("persistent id at byte " + std::to_string(op_at_) + " names no storage type");
  expect(a[2], K::Str, "a storage key");
  expect(a[3], K::Str, "a storage location");
  if (at(a[4]).kind != K::Int || at(a[4]).i < 0) fail("storage '" + shown(at(a[2]).s) + "' has no valid size");
  if (a.size() == 6 && at(a[5]).kind != K::None)
    fail("storage '" + shown(at(a[2]).s) + "' is a view of another storage (legacy view_metadata), which is not supported");
  Node n;
  n.kind = K::Storage;
  n.s = at(a[2]).s;
  n.dtype = type.dtype;
  n.i = at(a[4]).i;
  return add(std::move(n));
}

int Machine::run() {
  while (true) {
    op_at_ = pos_;
    if (pos_ >= b_.size()) fail("ends without STOP (the file is truncated)");
    op_ = b_[pos_++];
    switch (op_) {
      case 0x80: {  // PROTO
        const uint64_t v = read(1);
        if (v > 5) fail("pickle protocol " + std::to_string(v) + " is not known");
        break;
      }
      case 0x95: read(8); break;  // FRAME: a length hint
      case '(': marks_.push_back(stack_.size()); break;
      case ')': { Node n; n.kind = K::Tuple; push(add(std::move(n))); break; }
      case ']': { Node n; n.kind = K::List; push(add(std::move(n))); break; }
      case '}': { Node n; n.kind = K::Dict; push(add(std::move(n))); break; }
      case 't': { Node n; n.kind = K::Tuple; n.items = pop_mark(); push(add(std::move(n))); break; }
      case 0x85: case 0x86: case 0x87: {  // TUPLE1..3
        Node n;
        n.kind = K::Tuple;
        n.items.resize(size_t(op_ - 0x84));
        for (size_t k = n.items.size(); k-- > 0;) n.items[k] = pop();
        push(add(std::move(n)));
        break;
      }
      case 'N': push(add(Node{})); break;
      case 0x88: case 0x89: { Node n; n.kind = K::Bool; n.i = op_ == 0x88; push(add(std::move(n))); break; }
      case 'J': { Node n; n.kind = K::Int; n.i = int32_t(uint32_t(read(4))); push(add(std::move(n))); break; }
      case 'K': { Node n; n.kind = K::Int; n.i = int64_t(read(1)); push(add(std::move(n))); break; }
      case 'M': { Node n; n.kind = K::Int; n.i = int64_t(read(2)); push(add(std::move(n))); break; }
      case 0x8a: {  // LONG1: n bytes, little-endian two's complement
        const uint64_t len = read(1);
        const std::string_view raw = bytes(len);
        Node n;
        if (len <= 8) {
          uint64_t v = 0;
          for (size_t k = len; k-- > 0;) v = (v << 8) | uint8_t(raw[k]);
          if (len > 0 && len < 8 && (uint8_t(raw[len - 1]) & 0x80)) v |= ~uint64_t(0) << (8 * len);
          n.kind = K::Int;
          n.i = int64_t(v);
        } else {
          n.kind = K::BigInt;
          n.s = std::string(raw);
        }
        push(add(std::move(n)));
        break;
      }
      case 'G': { read(8); Node n; n.kind = K::Float; push(add(std::move(n))); break; }
      case 'X': case 0x8c: case 0x8d: {  // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
        const uint64_t len = read(op_ == 'X' ? 4 : op_ == 0x8c ? 1 : 8);
        Node n;
        n.kind = K::Str;
        n.s = std::string(bytes(len));
        push(add(std::move(n)));
        break;
      }
      case 'c': {  // GLOBAL "module\nname\n"
        std::string parts[2];
        for (std::string& p : parts) {
          while (true) {
            need(1);
            const char c = char(b_[pos_++]);
            if (c == '\n') break;
            if (p.size() > 200) fail("GLOBAL at byte " + std::to_string(op_at_) + " has an over-long name");
            p += c;
          }
        }
        push(global(parts[0], parts[1]));
        break;
      }
      case 0x93: {  // STACK_GLOBAL
        const int name = expect(pop(), K::Str, "a global's name");
        const int module = expect(pop(), K::Str, "a global's module");
        push(global(at(module).s, at(name).s));
        break;
      }
      case 'R': {
        const int args = pop();
        const int f = pop();
        push(reduce(f, args));
        break;
      }
      case 'b': {  // BUILD: only an OrderedDict's attributes (a module's _metadata), ignored
        const int state = pop();
        const int target = top();
        if (at(target).kind != K::Dict || (at(state).kind != K::Dict && at(state).kind != K::None))
          fail("BUILD at byte " + std::to_string(op_at_) + " sets the state of a " + kind_name(at(target).kind) +
               ", which a state dict never does");
        break;
      }
      case 'Q': push(persistent(pop())); break;
      case 's': {
        const int v = pop(), k = pop();
        Node& d = at(expect(top(), K::Dict, "SETITEM's target"));
        d.items.push_back(k);
        d.items.push_back(v);
        break;
      }
      case 'u': {
        std::vector<int> kv = pop_mark();
        if (kv.size() % 2) fail("SETITEMS at byte " + std::to_string(op_at_) + " has a key without a value");
        Node& d = at(expect(top(), K::Dict, "SETITEMS' target"));
        d.items.insert(d.items.end(), kv.begin(), kv.end());
        break;
      }
      case 'a': {
        const int v = pop();
        at(expect(top(), K::List, "APPEND's target")).items.push_back(v);
        break;
      }
      case 'e': {
        std::vector<int> vs = pop_mark();
        Node& l = at(expect(top(), K::List, "APPENDS' target"));
        l.items.insert(l.items.end(), vs.begin(), vs.end());
        break;
      }
      case 'q': memo_[read(1)] = top(); break;
      case 'r': memo_[read(4)] = top(); break;
      case 0x94: { const uint64_t k = memo_.size(); memo_[k] = top(); break; }
      case 'h': case 'j': {
        const uint64_t k = read(op_ == 'h' ? 1 : 4);
        auto it = memo_.find(k);
        if (it == memo_.end()) fail(std::string(opcode_name(op_)) + " at byte " + std::to_string(op_at_) + " reads memo " + std::to_string(k) + ", never stored");
        push(it->second);
        break;
      }
      case '.': {
        const int result = pop();
        return result;
      }
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op_);
        fail("opcode " + std::string(hex) + " (" + opcode_name(op_) + ") at byte " + std::to_string(op_at_) +
             " is not allowed in a tensor state dict (nothing in a file is ever run)");
      }
    }
  }
}

bool mul_ok(int64_t& acc, int64_t d) {
  if (d != 0 && acc > std::numeric_limits<int64_t>::max() / d) return false;
  acc *= d;
  return true;
}

}  // namespace

std::vector<PickledTensor> unpickle_state_dict(std::span<const uint8_t> bytes, const std::string& what, size_t start,
                                               size_t* end) {
  Machine m(bytes, what, start);
  const int root = m.run();
  if (end) *end = m.end();
  const Node& d = m.node(root);
  if (d.kind != K::Dict)
    m.fail(std::string("holds a ") + kind_name(d.kind) + ", not a state dict (a dict of tensor name -> tensor)");
  std::vector<PickledTensor> out;
  std::unordered_map<std::string, std::pair<std::string, int64_t>> storages;  // key -> dtype, numel
  std::unordered_set<std::string> names;
  for (size_t i = 0; i + 1 < d.items.size(); i += 2) {
    const Node& k = m.node(d.items[i]);
    const Node& v = m.node(d.items[i + 1]);
    if (k.kind != K::Str) m.fail(std::string("a key of the state dict is a ") + kind_name(k.kind) + ", not a name");
    if (v.kind != K::Tensor)
      m.fail("entry '" + shown(k.s) + "' is a " + kind_name(v.kind) +
             ", not a tensor: expected a state dict (save model.state_dict() itself)");
    const TensorView& t = m.tensor(v.tensor);
    const Node& s = m.node(t.storage);
    PickledTensor p;
    p.name = k.s;
    p.storage_key = s.s;
    p.dtype = s.dtype;
    p.storage_numel = s.i;
    p.offset = t.offset;
    p.shape = t.shape;
    p.stride = t.stride;
    auto [it, fresh] = storages.emplace(s.s, std::make_pair(s.dtype, s.i));
    if (!fresh && it->second != std::make_pair(s.dtype, s.i))
      m.fail("storage '" + shown(s.s) + "' is given two element types or sizes");
    if (!names.insert(p.name).second) m.fail("tensor '" + shown(p.name) + "' appears twice");

    // Elements it spans: contiguous (row-major), inside its storage.
    int64_t numel = 1, expected = 1;
    bool contiguous = true;
    for (size_t j = p.shape.size(); j-- > 0;) {
      if (p.shape[j] != 1 && p.stride[j] != expected) contiguous = false;
      if (!mul_ok(expected, p.shape[j])) m.fail("tensor '" + shown(p.name) + "' has a size too large");
    }
    numel = expected;
    if (numel > 0 && !contiguous)
      m.fail("tensor '" + shown(p.name) + "' of size " + shape_str(p.shape) + " is not contiguous (stride " +
             shape_str(p.stride) + "); save the tensors made contiguous (.contiguous())");
    if (p.offset > p.storage_numel || numel > p.storage_numel - p.offset)
      m.fail("tensor '" + shown(p.name) + "' spans elements [" + std::to_string(p.offset) + ", " +
             std::to_string(p.offset) + " + " + std::to_string(numel) + ") beyond its storage '" + shown(s.s) + "' of " +
             std::to_string(p.storage_numel));
    out.push_back(std::move(p));
  }
  return out;
}

size_t read_legacy_header(std::span<const uint8_t> bytes) {
  // The magic number 0x1950a86a20f9469cfc6c, as LONG1 writes it.
  static const uint8_t kMagic[] = {0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19};
  size_t pos = 0;
  {
    Machine m(bytes, "legacy header", pos);
    const Node& magic = m.node(m.run());
    if (magic.kind != K::BigInt || magic.s != std::string(reinterpret_cast<const char*>(kMagic), sizeof kMagic))
      m.fail("not a PyTorch checkpoint (its first pickle is not PyTorch's magic number)");
    pos = m.end();
  }
  {
    Machine m(bytes, "legacy header", pos);
    const Node& version = m.node(m.run());
    if (version.kind != K::Int || version.i != 1001)
      m.fail("protocol version is not 1001 (a PyTorch legacy checkpoint of another kind)");
    pos = m.end();
  }
  Machine m(bytes, "legacy header", pos);
  const Node& info = m.node(m.run());
  if (info.kind != K::Dict) m.fail("system info is not a dict");
  for (size_t i = 0; i + 1 < info.items.size(); i += 2)
    if (m.node(info.items[i]).kind == K::Str && m.node(info.items[i]).s == "little_endian") {
      const Node& v = m.node(info.items[i + 1]);
      if (v.kind != K::Bool || v.i != 1) m.fail("the checkpoint was written on a big-endian machine, which is not supported");
    }
  return m.end();
}

std::vector<std::string> unpickle_string_list(std::span<const uint8_t> bytes, const std::string& what, size_t start,
                                              size_t* end) {
  Machine m(bytes, what, start);
  const Node& l = m.node(m.run());
  if (end) *end = m.end();
  if (l.kind != K::List) m.fail(std::string("is a ") + kind_name(l.kind) + ", not a list of storage keys");
  std::vector<std::string> out;
  for (int i : l.items) {
    if (m.node(i).kind != K::Str) m.fail("a storage key is not a string");
    out.push_back(m.node(i).s);
  }
  return out;
}

}  // namespace cs
