//! Which partition a keyed record goes to, computed the way the Java client
//! (and kafka-python, Sarama's Kafka-compatible hasher, kafkajs) computes it.
//!
//! librdkafka's default partitioner (`consistent_random`) hashes keys with
//! CRC32, so a key produced by librdkafka and the same key produced by a Java
//! client land on different partitions and per-key ordering breaks as soon as
//! both write a topic. Every producer kafka-utils creates therefore sets
//! `partitioner=murmur2_random` ([`PARTITIONER`]): murmur2 for keyed records,
//! exactly Java's `Utils.toPositive(Utils.murmur2(key)) % partitions`, and a
//! random partition for records without a key.
//!
//! [`murmur2`] is a reimplementation of Java's `Utils.murmur2`, checked
//! against Kafka's own test vectors; it lets tests (and operators) say where a
//! key goes without a broker.

/// The librdkafka `partitioner` setting of every kafka-utils producer.
pub const PARTITIONER: &str = "murmur2_random";

/// Java's `org.apache.kafka.common.utils.Utils.murmur2`: 32-bit murmur2 with
/// seed `0x9747b28c`, the tail read little-endian, as a signed int.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java computes `seed ^ length` on ints; a key longer than i32::MAX bytes
    // cannot exist in Kafka, so the truncation below is the same arithmetic.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if let Some(&first) = tail.first() {
        h ^= u32::from(first);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition the Java client's default partitioner picks for `key` on a
/// topic of `partitions` partitions: `toPositive(murmur2(key)) % partitions`.
/// `None` for a topic without partitions.
pub fn partition_for_key(key: &[u8], partitions: i32) -> Option<i32> {
    if partitions <= 0 {
        return None;
    }
    Some((murmur2(key) & 0x7fff_ffff) % partitions)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's own vectors: `UtilsTest.testMurmur2` in the Java client
    /// (clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java).
    const KAFKA_UTILS_TEST: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58_897_971),
        (b"abc", 479_470_107),
    ];

    #[test]
    fn murmur2_equals_the_java_clients_on_kafkas_own_vectors() {
        for (key, java) in KAFKA_UTILS_TEST {
            assert_eq!(murmur2(key), java, "murmur2({:?})", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn murmur2_equals_published_values_for_every_tail_length() {
        // Published Java values (Akka's Murmur2Spec, taken from Kafka's
        // Utils.murmur2): a tail of 1, 2, 3 and 0 bytes, and a block plus a tail.
        for (key, java) in [
            ("1", -1_993_445_489),
            ("12", 126_087_238),
            ("123", -267_702_483),
            ("1234", -1_614_185_708),
            ("12345", -1_188_365_604),
        ] {
            assert_eq!(murmur2(key.as_bytes()), java, "murmur2({key:?})");
        }
    }

    #[test]
    fn the_partition_is_java_to_positive_modulo_the_count() {
        // toPositive(-973932308) = 1173551340; 1173551340 % 8 = 4.
        assert_eq!(partition_for_key(b"21", 8), Some(1_173_551_340 % 8));
        assert_eq!(partition_for_key(b"abc", 1), Some(0));
        assert_eq!(partition_for_key(b"abc", 0), None);
        for key in ["site-1", "ElBorn", "x"] {
            let p = partition_for_key(key.as_bytes(), 6).expect("partitions");
            assert!((0..6).contains(&p));
        }
    }
}
