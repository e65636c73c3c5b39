"""The HTTP gateway: rembg's `POST /api/remove`, a job API, an event stream and a web page,
in front of the queue. It enqueues `cutout.remove` like every other sender and never loads
the model, so it scales with the workers; `cutout http` runs it, `cutout up --http` with the
rest. Settings are read at its edge (`create_app`, `cutout http`) and passed down."""
