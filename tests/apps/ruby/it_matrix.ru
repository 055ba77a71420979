# The integration tests' Rack app: one route per case of the request matrix (the same routes as
# tests/apps/python/it_matrix.py), wrapped in Rack::Lint, so any Rack SPEC violation by the
# server (or by this app) makes the request fail loudly instead of passing.
require 'json'
# Rack 2.2's Lint checks SERVER_NAME with URI without requiring it (Puma and Thin load it).
require 'uri'

HERE = File.expand_path(__dir__)

# A body that streams its chunks one `each` at a time.
class Chunks
  def initialize(parts)
    @parts = parts
  end

  def each(&block)
    @parts.each(&block)
  end
end

# A body the server may send with sendfile (to_path), or read with each.
class FileBody
  def initialize(path)
    @path = path
  end

  def to_path
    @path
  end

  def each
    File.open(@path, 'rb') { |f| while (chunk = f.read(4096)); yield chunk; end }
  end
end

def text(status, body)
  [status, { 'Content-Type' => 'text/plain' }, [body]]
end

app = lambda do |env|
  path = env['PATH_INFO']
  input = env['rack.input']
  case path
  when '/'
    text(200, 'Hello World')
  when '/echo'
    body = input.read
    [200, { 'Content-Type' => 'application/octet-stream', 'Content-Length' => body.bytesize.to_s }, [body]]
  when '/lines'
    lines = []
    while (line = input.gets)
      lines << line.chomp
    end
    text(200, "#{lines.size} #{lines.join('|')}")
  when %r{\A/path}
    text(200, "#{path}?#{env['QUERY_STRING']}")
  when '/stream'
    [200, { 'Content-Type' => 'text/plain' }, Chunks.new((0..4).map { |i| "chunk#{i};" })]
  when '/file'
    [200, { 'Content-Type' => 'text/x-ruby' }, FileBody.new(File.join(HERE, 'it_matrix.ru'))]
  when '/raise'
    raise 'the app raised on purpose'
  when '/empty'
    [204, {}, []]
  when '/sleep'
    sleep((env['QUERY_STRING'].to_s.empty? ? '1' : env['QUERY_STRING']).to_f)
    text(200, 'slept')
  when '/pid'
    text(200, Process.pid.to_s)
  when '/crash'
    exit!(3)
  when '/big'
    body = 'x' * (1 << 20)
    [200, { 'Content-Type' => 'text/plain' }, [body[0, 1 << 19], body[1 << 19..]]]
  when '/environ'
    keys = %w[REQUEST_METHOD SCRIPT_NAME PATH_INFO QUERY_STRING CONTENT_TYPE CONTENT_LENGTH
              SERVER_NAME SERVER_PORT SERVER_PROTOCOL REMOTE_ADDR HTTP_HOST HTTP_X_TEST
              rack.url_scheme rack.multithread rack.multiprocess rack.run_once rack.version]
    out = keys.to_h { |k| [k, env[k]] }
    env['rack.errors'].puts('rack.errors reached the log')
    [200, { 'Content-Type' => 'application/json' }, [JSON.generate(out)]]
  else
    text(404, 'not found')
  end
end

use Rack::Lint
run app
