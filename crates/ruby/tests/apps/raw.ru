# What Rack::Lint would stop before the server saw it: bad statuses and headers, failing bodies.
# The server must refuse each with a 500 and still call the body's close.
$closed = 0

class Parts
  def initialize(parts, fail_after: nil, fail_close: false)
    @parts = parts
    @fail_after = fail_after
    @fail_close = fail_close
  end

  def each
    @parts.each_with_index do |part, i|
      raise IOError, "each failed after #{i} parts" if @fail_after == i
      yield part
    end
  end

  def close
    $closed += 1
    raise "close failed" if @fail_close
  end
end

# A body the server may send with sendfile (`to_path`); `each` is what it sends otherwise.
class FileBody
  def initialize(path)
    @path = path
  end

  def to_path
    @path
  end

  def each
    yield "sent by each"
  end

  def close
    $closed += 1
  end
end

run(lambda do |env|
  case env["PATH_INFO"]
  when "/status-42" then [42, {}, Parts.new(["x"])]
  when "/status-word" then ["abc", {}, Parts.new(["x"])]
  when "/status-symbol" then [:ok, {}, Parts.new(["x"])]
  when "/status-string" then ["201", { "Content-Type" => "text/plain" }, ["made"]]
  when "/bad-header" then [200, { "Bad Name" => "x" }, Parts.new(["x"])]
  when "/header-symbol" then [200, { "X-A" => :b }, Parts.new(["x"])]
  when "/each-raises" then [200, {}, Parts.new(%w[a b c], fail_after: 1)]
  when "/close-raises" then [200, {}, Parts.new(%w[a b], fail_close: true)]
  when "/not-a-string" then [200, {}, Parts.new(["a", 1])]
  when "/not-a-triple" then "hello"
  when "/file" then [200, { "Content-Type" => "text/plain" }, FileBody.new(env["QUERY_STRING"])]
  when "/array-body" then [200, {}, ["a", "b", "c"]]
  when "/closed" then [200, {}, [$closed.to_s]]
  else [404, {}, ["not found"]]
  end
end)
