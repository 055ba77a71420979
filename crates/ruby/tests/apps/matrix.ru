# The Rack SPEC, path by path, behind Rack::Lint (which raises on anything the server or the app
# gets wrong): the tests call each path and check the answer.
require "json"
# Rack 2.2's Lint checks SERVER_NAME with URI.parse without requiring it (rackup does).
require "uri"

$closed = 0

# A body that is not an Array: its parts go out one `each` at a time.
class Parts
  def initialize(parts)
    @parts = parts
  end

  def each(&block)
    @parts.each(&block)
  end

  def close
    $closed += 1
  end
end

def json(data)
  [200, { "Content-Type" => "application/json" }, [JSON.generate(data)]]
end

use Rack::Lint

run(lambda do |env|
  case env["PATH_INFO"]
  when "/env"
    cgi = env.select { |k, v| !k.include?(".") && v.is_a?(String) }
    json(
      "cgi" => cgi,
      "version" => env["rack.version"],
      "url_scheme" => env["rack.url_scheme"],
      "multithread" => env["rack.multithread"],
      "multiprocess" => env["rack.multiprocess"],
      "run_once" => env["rack.run_once"],
      "hijack" => env["rack.hijack?"],
      "encodings" => cgi.values.map { |v| v.encoding.name }.uniq,
      "keys_frozen" => env.keys.all?(&:frozen?),
      "errors" => %i[puts write flush].all? { |m| env["rack.errors"].respond_to?(m) },
    )
  when "/input"
    input = env["rack.input"]
    r = {}
    r["gets"] = input.gets
    r["read2"] = input.read(2)
    buf = +"junk"
    got = input.read(3, buf)
    r["read3buf"] = [got, buf, got.equal?(buf)]
    r["rest"] = input.read
    r["eof_read"] = input.read
    r["eof_read1"] = input.read(1)
    r["eof_gets"] = input.gets
    input.rewind
    lines = []
    input.each { |line| lines << line }
    r["each"] = lines
    input.rewind
    all = input.read
    r["all"] = all
    r["binary"] = all.encoding == Encoding::ASCII_8BIT
    json(r)
  when "/each"
    [200, { "Content-Type" => "text/plain" }, Parts.new(%w[a bb ccc])]
  when "/multi"
    [200, { "Content-Type" => "text/plain", "Set-Cookie" => "a=1\nb=2" }, ["ok"]]
  when "/errors"
    env["rack.errors"].puts "matrix: a line for rack.errors"
    env["rack.errors"].write "matrix: written\n"
    env["rack.errors"].flush
    [204, {}, []]
  when "/head"
    [200, { "Content-Type" => "text/plain", "Content-Length" => "5" },
     env["REQUEST_METHOD"] == "HEAD" ? [] : ["hello"]]
  when "/closed"
    [200, { "Content-Type" => "text/plain" }, [$closed.to_s]]
  when "/raise"
    raise ArgumentError, "boom from the app"
  else
    [404, { "Content-Type" => "text/plain" }, ["not found"]]
  end
end)
