# A streaming body: each part is yielded after a pause, and must reach the client as it is
# yielded (one chunk each), not once the body ends.
class Slow
  def each
    3.times do |i|
      yield "part #{i}\n"
      sleep 0.2
    end
  end
end

run ->(env) { [200, { "Content-Type" => "text/plain" }, Slow.new] }
