# The demo's Rack app: a greeting, the request as the app sees it, and a form echo.
require 'json'

run(lambda do |env|
  case env['PATH_INFO']
  when '/environ'
    shown = env.select { |k, _| k.match?(/\A[A-Z_]+\z/) || k.start_with?('rack.') }
    [200, { 'Content-Type' => 'application/json' }, [JSON.pretty_generate(shown.transform_values(&:to_s).sort.to_h)]]
  when '/echo'
    [200, { 'Content-Type' => env['CONTENT_TYPE'] || 'text/plain' }, [env['rack.input'].read]]
  else
    [200, { 'Content-Type' => 'text/plain' }, ["Hello from liege (Rack, Ruby #{RUBY_VERSION}), worker pid #{Process.pid}\n"]]
  end
end)
