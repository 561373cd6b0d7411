use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext, DeliveryResult};
use rdkafka::client::ClientContext;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};
use rdkafka::ClientConfig;
use rdkafka::message::Message;
use rdkafka::config::RDKafkaLogLevel;

#[derive(Clone, Default)]
struct Ctx(Arc<Mutex<Vec<String>>>);
impl ClientContext for Ctx {
    fn log(&self, _: RDKafkaLogLevel, _: &str, _: &str) {}
    fn error(&self, e: rdkafka::error::KafkaError, r: &str) { self.0.lock().unwrap().push(format!("GLOBAL {e:?} {r}")); }
}
impl ProducerContext for Ctx {
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
        let s = match r { Ok(m) => format!("ok {:?}", m.payload().map(|p| String::from_utf8_lossy(p).into_owned())), Err((e, m)) => format!("ERR {e:?} {:?}", m.payload().map(|p| String::from_utf8_lossy(p).into_owned())) };
        self.0.lock().unwrap().push(s);
    }
}

fn probe(err: RDKafkaRespErr, idem: bool) {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("t", 1, 1).unwrap();
    let ctx = Ctx::default();
    let p: BaseProducer<Ctx> = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("enable.idempotence", idem.to_string())
        .set("acks", "all").set("compression.type", "zstd").set("linger.ms", "5")
        .set("message.timeout.ms", "3000")
        .set_log_level(RDKafkaLogLevel::Emerg)
        .create_with_context(ctx.clone()).unwrap();
    if std::env::var("WARM").is_ok() { p.send(BaseRecord::to("t").key("k").payload("warm")).unwrap();
    p.flush(Duration::from_secs(5)).unwrap(); }
    mock.request_errors(RDKafkaApiKey::Produce, &[err]);
    let t = Instant::now();
    let r = p.send(BaseRecord::to("t").key("k").payload("x"));
    let r2 = if std::env::var("TWO").is_ok() { p.send(BaseRecord::to("t").key("k").payload("y")) } else { Ok(()) };
    let _ = p.flush(Duration::from_secs(8));
    let el = t.elapsed();
    let after = p.send(BaseRecord::to("t").key("k").payload("z"));
    let _ = p.flush(Duration::from_secs(5));
    eprintln!("{err:?} idem={idem}: send {:?} {:?} in {el:?}; fatal={:?}; after {:?}\n   {:?}", r.is_ok(), r2.is_ok(), p.client().fatal_error().map(|f| f.0), after.as_ref().err().map(|e| &e.0), ctx.0.lock().unwrap());
}

#[test]
fn scratch() {
    use RDKafkaRespErr::*;
    for e in [RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER, RD_KAFKA_RESP_ERR_NETWORK_EXCEPTION] {
        probe(e, true);
    }
}
